//! `trigger_executions`: the runs event triggers started, with the hash of each fire's context.

use diesel::prelude::*;

use super::serialize_writes;
use crate::database::schema::{pipeline_executions as pe, trigger_executions as te};
use crate::database::{AnyConnection, Result, UniversalTimestamp, UniversalUuid};
use crate::models::{PipelineExecutionId, TriggerExecution, TriggerExecutionId};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = te)]
struct ExecutionRow {
    id: UniversalUuid,
    trigger_name: String,
    context_hash: String,
    pipeline_execution_id: Option<UniversalUuid>,
    fired_by: String,
    fired_at: UniversalTimestamp,
}

impl From<ExecutionRow> for TriggerExecution {
    fn from(r: ExecutionRow) -> Self {
        TriggerExecution {
            id: r.id.into(),
            trigger_name: r.trigger_name,
            context_hash: r.context_hash,
            pipeline_execution_id: r.pipeline_execution_id.map(Into::into),
            fired_by: r.fired_by,
            fired_at: r.fired_at.as_datetime(),
        }
    }
}

/// Records that trigger `name` started `pipeline` with a context hashing to `hash`.
pub fn insert(
    conn: &mut AnyConnection,
    name: &str,
    hash: &str,
    pipeline: PipelineExecutionId,
    runner: &str,
    now: UniversalTimestamp,
) -> Result<TriggerExecutionId> {
    let id = TriggerExecutionId::new();
    let row = ExecutionRow {
        id: id.into(),
        trigger_name: name.to_owned(),
        context_hash: hash.to_owned(),
        pipeline_execution_id: Some(pipeline.into()),
        fired_by: runner.to_owned(),
        fired_at: now,
    };
    serialize_writes(conn, |conn| diesel::insert_into(te::table).values(&row).execute(conn))?;
    Ok(id)
}

/// True when a fire of trigger `name` with context hash `hash`, from a poll that began at
/// `polled_at`, would overlap a run the trigger started with that hash: one is unfinished, or it
/// ended at or after `polled_at` (the poll may have seen the state before that run's work, such as
/// a file it had not taken yet).
pub fn overlaps(conn: &mut AnyConnection, name: &str, hash: &str, polled_at: UniversalTimestamp) -> Result<bool> {
    let n: i64 = te::table
        .inner_join(pe::table)
        .filter(te::trigger_name.eq(name))
        .filter(te::context_hash.eq(hash))
        .filter(pe::status.eq_any(super::unfinished_statuses()).or(pe::completed_at.ge(polled_at)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The runs trigger `name` started, newest first; a page of `limit` from `offset`.
pub fn history(conn: &mut AnyConnection, name: &str, limit: i64, offset: i64) -> Result<Vec<TriggerExecution>> {
    let rows: Vec<ExecutionRow> = te::table
        .filter(te::trigger_name.eq(name))
        .order((te::fired_at.desc(), te::id.desc()))
        .select(ExecutionRow::as_select())
        .limit(limit)
        .offset(offset)
        .load(conn)?;
    Ok(rows.into_iter().map(TriggerExecution::from).collect())
}
