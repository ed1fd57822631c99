//! `task_attempts`: one row per attempt of a task that ended without completing it (retried,
//! failed, given back, lease expired), written in the transaction that records that end. The
//! attempt that completed a task, or runs now, is described by the task's own row, so the hot
//! path (a completion) writes nothing here; [`history`] puts the two together.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::database::schema::task_attempts as ta;
use crate::database::{AnyConnection, Result, UniversalTimestamp, UniversalUuid};
use crate::models::{AttemptOutcome, PipelineExecutionId, TaskAttempt, TaskExecution, TaskExecutionId, TaskStatus};

use super::{corrupt, time, uint};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = ta)]
struct AttemptRow {
    id: UniversalUuid,
    task_execution_id: UniversalUuid,
    pipeline_execution_id: UniversalUuid,
    attempt: i32,
    outcome: String,
    runner: Option<String>,
    error_details: Option<String>,
    started_at: Option<UniversalTimestamp>,
    ended_at: UniversalTimestamp,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

/// An attempt that has just ended without completing its task.
pub(crate) struct Ended<'a> {
    pub(crate) task: UniversalUuid,
    pub(crate) pipeline: UniversalUuid,
    pub(crate) attempt: i32,
    pub(crate) outcome: AttemptOutcome,
    pub(crate) runner: Option<&'a str>,
    pub(crate) error: &'a str,
    pub(crate) started_at: Option<UniversalTimestamp>,
}

/// Records `ended` at `now`. Call it in the transaction whose fenced update ended the attempt.
pub(crate) fn record(conn: &mut AnyConnection, ended: &Ended<'_>, now: UniversalTimestamp) -> Result<()> {
    diesel::insert_into(ta::table)
        .values(AttemptRow {
            id: UniversalUuid::new_v7(),
            task_execution_id: ended.task,
            pipeline_execution_id: ended.pipeline,
            attempt: ended.attempt,
            outcome: ended.outcome.as_str().to_owned(),
            runner: ended.runner.map(str::to_owned),
            error_details: Some(ended.error.to_owned()),
            started_at: ended.started_at,
            ended_at: now,
            created_at: now,
            updated_at: now,
        })
        .execute(conn)?;
    Ok(())
}

/// The stored (ended, not completing) attempts of a pipeline's tasks.
pub fn list_for_pipeline(conn: &mut AnyConnection, pipeline: PipelineExecutionId) -> Result<Vec<TaskAttempt>> {
    let rows: Vec<AttemptRow> = ta::table
        .filter(ta::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .order((ta::task_execution_id.asc(), ta::attempt.asc()))
        .select(AttemptRow::as_select())
        .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(TaskAttempt {
                task_execution_id: r.task_execution_id.into(),
                attempt: uint(r.attempt),
                outcome: r.outcome.parse().map_err(|e| corrupt("task_attempts", e))?,
                runner: r.runner,
                error_details: r.error_details,
                started_at: time(r.started_at),
                ended_at: Some(r.ended_at.as_datetime()),
            })
        })
        .collect()
}

/// Every attempt of `tasks` (one pipeline's), in task order and by attempt number: the stored
/// ended attempts plus, from each task row, the attempt that completed it or runs now (or the last
/// one of a failed task with no stored row: a failure recorded before this table existed).
pub fn history(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    tasks: &[TaskExecution],
) -> Result<Vec<TaskAttempt>> {
    let mut ended: HashMap<TaskExecutionId, Vec<TaskAttempt>> = HashMap::new();
    for attempt in list_for_pipeline(conn, pipeline)? {
        ended.entry(attempt.task_execution_id).or_default().push(attempt);
    }
    let mut all = Vec::new();
    for task in tasks {
        let mine = ended.remove(&task.id).unwrap_or_default();
        let last_stored = mine.last().map(|a| a.attempt);
        all.extend(mine);
        all.extend(from_row(task).filter(|row| last_stored.is_none_or(|n| n < row.attempt)));
    }
    Ok(all)
}

/// The attempt a task row describes itself, if it has started one that is not stored.
fn from_row(task: &TaskExecution) -> Option<TaskAttempt> {
    let outcome = match task.status {
        TaskStatus::Completed => AttemptOutcome::Completed,
        TaskStatus::Running => AttemptOutcome::Running,
        TaskStatus::Failed => AttemptOutcome::Failed,
        // Not run at all, or waiting for its next attempt (whose predecessors are stored).
        TaskStatus::NotStarted | TaskStatus::Ready | TaskStatus::Skipped | TaskStatus::Cancelled => return None,
    };
    let started_at = task.started_at?;
    Some(TaskAttempt {
        task_execution_id: task.id,
        attempt: task.attempt,
        outcome,
        runner: task.claimed_by.clone(),
        // The row's error belongs to this attempt only once it has failed (a running attempt's row
        // may still show its predecessor's error).
        error_details: (outcome == AttemptOutcome::Failed).then(|| task.error_details.clone()).flatten(),
        started_at: Some(started_at),
        ended_at: task.completed_at,
    })
}
