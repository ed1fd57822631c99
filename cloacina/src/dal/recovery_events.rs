//! `recovery_events`: one row per decision recovery makes about a task whose lease expired.

use diesel::prelude::*;
use serde_json::json;

use crate::database::schema::recovery_events as re;
use crate::database::{AnyConnection, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::{PipelineExecutionId, RecoveredTask, RecoveryEvent, TaskExecutionId};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = re)]
struct RecoveryRow {
    id: UniversalUuid,
    pipeline_execution_id: UniversalUuid,
    task_execution_id: Option<UniversalUuid>,
    recovery_type: String,
    details: Option<UniversalJson>,
    recovered_at: UniversalTimestamp,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

impl From<RecoveryRow> for RecoveryEvent {
    fn from(r: RecoveryRow) -> Self {
        RecoveryEvent {
            id: r.id.into(),
            pipeline_execution_id: r.pipeline_execution_id.into(),
            task_execution_id: r.task_execution_id.map(Into::into),
            recovery_type: r.recovery_type,
            details: r.details.map(|d| d.0),
            recovered_at: r.recovered_at.as_datetime(),
        }
    }
}

/// `recovery_type` of a task whose lease expired, put back to `Ready` for another attempt.
pub const TASK_REQUEUED: &str = "task_requeued";
/// `recovery_type` of a task whose lease expired, failed because its attempts were spent.
pub const TASK_FAILED: &str = "task_failed";
/// `recovery_type` of a task given back by its runner with its attempt cut short (a graceful
/// shutdown cancelled it at the deadline, say); it runs again without being charged an attempt.
pub const TASK_RELEASED: &str = "task_released";
/// `recovery_type` of a pipeline that recovery found with nothing Ready or Running yet unfinished,
/// and moved on (decided its remaining tasks, or ended it).
pub const PIPELINE_RECONCILED: &str = "pipeline_reconciled";

/// Records a decision about one task: `kind` is one of the `TASK_…` types.
pub(crate) fn insert_for_task(
    conn: &mut AnyConnection,
    kind: &str,
    task: &RecoveredTask,
    message: &str,
    now: UniversalTimestamp,
) -> Result<()> {
    let details = json!({
        "previous_claimant": task.previous_claimant,
        "attempt": task.attempt,
        "message": message,
    });
    insert(conn, task.pipeline_execution_id, Some(task.task_execution_id), kind, details, now)
}

/// Records one recovery decision about a pipeline (and one of its tasks, if given).
pub fn insert(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    task: Option<TaskExecutionId>,
    kind: &str,
    details: serde_json::Value,
    now: UniversalTimestamp,
) -> Result<()> {
    let row = RecoveryRow {
        id: UniversalUuid::new_v7(),
        pipeline_execution_id: pipeline.into(),
        task_execution_id: task.map(Into::into),
        recovery_type: kind.to_owned(),
        details: Some(UniversalJson(details)),
        recovered_at: now,
        created_at: now,
        updated_at: now,
    };
    super::serialize_writes(conn, |conn| diesel::insert_into(re::table).values(&row).execute(conn))?;
    Ok(())
}

/// Every recovery event of a pipeline, oldest first.
pub fn list_for_pipeline(conn: &mut AnyConnection, pipeline: PipelineExecutionId) -> Result<Vec<RecoveryEvent>> {
    let rows: Vec<RecoveryRow> = re::table
        .filter(re::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .order((re::recovered_at.asc(), re::id.asc()))
        .select(RecoveryRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(RecoveryEvent::from).collect())
}
