//! `cron_executions`: one row per (schedule, fire time). Its unique key is what makes each fire
//! time start exactly one pipeline across every runner.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::{serialize_writes, write_transaction};
use crate::database::on_inner;
use crate::database::schema::{cron_executions as ce, cron_schedules as cs};
use crate::database::{AnyConnection, Result, UniversalTimestamp, UniversalUuid};
use crate::models::{CronExecution, CronExecutionId, CronScheduleId, PipelineExecutionId};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = ce)]
struct CronExecutionRow {
    id: UniversalUuid,
    schedule_id: UniversalUuid,
    scheduled_time: UniversalTimestamp,
    pipeline_execution_id: Option<UniversalUuid>,
    claimed_by: String,
    claimed_at: UniversalTimestamp,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

impl From<CronExecutionRow> for CronExecution {
    fn from(r: CronExecutionRow) -> Self {
        CronExecution {
            id: r.id.into(),
            schedule_id: r.schedule_id.into(),
            scheduled_time: r.scheduled_time.as_datetime(),
            pipeline_execution_id: r.pipeline_execution_id.map(Into::into),
            claimed_by: r.claimed_by,
            claimed_at: r.claimed_at.as_datetime(),
        }
    }
}

/// Claims the fire time `scheduled_time` of `schedule` for `runner`. Exactly one caller across
/// all runners gets `Some`; the others get `None` (the unique key rejects their row).
pub fn claim(
    conn: &mut AnyConnection,
    schedule: CronScheduleId,
    scheduled_time: DateTime<Utc>,
    runner: &str,
    now: UniversalTimestamp,
) -> Result<Option<CronExecutionId>> {
    let id = CronExecutionId::new();
    let row = CronExecutionRow {
        id: id.into(),
        schedule_id: schedule.into(),
        scheduled_time: scheduled_time.into(),
        pipeline_execution_id: None,
        claimed_by: runner.to_owned(),
        claimed_at: now,
        created_at: now,
        updated_at: now,
    };
    // `ON CONFLICT DO NOTHING` does not compile through `MultiBackend`; the same statement per backend.
    let inserted = serialize_writes(conn, |conn| {
        on_inner!(conn, c => diesel::insert_into(ce::table)
        .values(&row)
        .on_conflict((ce::schedule_id, ce::scheduled_time))
        .do_nothing()
        .execute(c))
    })?;
    Ok((inserted == 1).then_some(id))
}

/// Links claimed fire time `id` to the pipeline it started, only if `runner` still holds the
/// claim and no pipeline is linked yet; returns whether it did. The caller creates the pipeline in
/// the same transaction and rolls both back when this returns false: a runner that stalled past
/// the orphan timeout cannot start a second pipeline for the same fire time.
#[must_use = "the claim may have been taken over"]
pub fn link_pipeline(
    conn: &mut AnyConnection,
    id: CronExecutionId,
    runner: &str,
    pipeline: PipelineExecutionId,
    now: UniversalTimestamp,
) -> Result<bool> {
    let linked = serialize_writes(conn, |conn| {
        diesel::update(
            ce::table
                .find(UniversalUuid::from(id))
                .filter(ce::pipeline_execution_id.is_null())
                .filter(ce::claimed_by.eq(runner)),
        )
        .set((ce::pipeline_execution_id.eq(UniversalUuid::from(pipeline)), ce::updated_at.eq(now)))
        .execute(conn)
    })?;
    Ok(linked == 1)
}

/// Takes over up to `limit` fire times of schedules of `workflows` that were claimed before
/// `claimed_before` but never got a pipeline (their claimant died in between), re-claiming them
/// for `runner`. Each takeover is conditional on the row still being orphaned, so two runners
/// never take the same one.
pub fn reclaim_orphaned(
    conn: &mut AnyConnection,
    runner: &str,
    workflows: &[String],
    claimed_before: UniversalTimestamp,
    now: UniversalTimestamp,
    limit: u32,
) -> Result<Vec<CronExecution>> {
    write_transaction(conn, |conn| {
        let orphaned = || {
            ce::table.filter(ce::pipeline_execution_id.is_null()).filter(ce::claimed_at.lt(claimed_before)).filter(
                ce::schedule_id.eq_any(cs::table.filter(cs::workflow_name.eq_any(workflows.to_vec())).select(cs::id)),
            )
        };
        let ids: Vec<UniversalUuid> =
            orphaned().order(ce::claimed_at.asc()).limit(i64::from(limit)).select(ce::id).load(conn)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<CronExecutionRow> = diesel::update(orphaned().filter(ce::id.eq_any(ids)))
            .set((ce::claimed_by.eq(runner), ce::claimed_at.eq(now), ce::updated_at.eq(now)))
            .returning(ce::all_columns)
            .get_results(conn)?;
        Ok(rows.into_iter().map(CronExecution::from).collect())
    })
}

/// The fire-time history of a schedule, newest first: `limit` entries after skipping `offset`.
pub fn list_for_schedule(
    conn: &mut AnyConnection,
    schedule: CronScheduleId,
    limit: u32,
    offset: u32,
) -> Result<Vec<CronExecution>> {
    let rows: Vec<CronExecutionRow> = ce::table
        .filter(ce::schedule_id.eq(UniversalUuid::from(schedule)))
        .order(ce::scheduled_time.desc())
        .limit(i64::from(limit))
        .offset(i64::from(offset))
        .select(CronExecutionRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(CronExecution::from).collect())
}

/// Fire times claimed since `since`: how many, how many started their pipeline, and how many
/// were claimed before `lost_before` and still have none (their runner died before starting
/// them; recovery re-fires them unless it is off).
pub fn counts_since(
    conn: &mut AnyConnection,
    since: UniversalTimestamp,
    lost_before: UniversalTimestamp,
) -> Result<FireCounts> {
    let recent = || ce::table.filter(ce::claimed_at.ge(since));
    let total: i64 = recent().count().get_result(conn)?;
    let started: i64 = recent().filter(ce::pipeline_execution_id.is_not_null()).count().get_result(conn)?;
    let lost: i64 = recent()
        .filter(ce::pipeline_execution_id.is_null())
        .filter(ce::claimed_at.lt(lost_before))
        .count()
        .get_result(conn)?;
    Ok(FireCounts { total, started, lost })
}

/// What [`counts_since`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireCounts {
    /// Fire times claimed.
    pub total: i64,
    /// Those whose pipeline was started.
    pub started: i64,
    /// Those claimed long ago and never started.
    pub lost: i64,
}
