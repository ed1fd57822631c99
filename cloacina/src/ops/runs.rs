//! Runs (pipeline executions): start, retry, cancel, pause, resume and prune them; list them a
//! page at a time; everything about one ([`details`]). A run is started at its workflow's live
//! version ([`super::workflows::live_version`]), from the task graph the registry recorded;
//! runners that have that version pick it up.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::liveness::Liveness;
use super::outcome::{Outcome, Refused};
use super::waiting::{waiting, Waiting};
use super::workflows::{definition, live_version};
use crate::dal::{
    contexts, pipeline_executions as pipelines, recovery_events, task_attempts, task_executions as tasks,
    workflow_registry, write_transaction,
};
use crate::database::{AnyConnection, UniversalTimestamp};
use crate::engine::PipelineInfo;
use crate::faults::Faults;
use crate::models::{
    PipelineExecution, PipelineExecutionId, PipelineStatus, RecoveryEvent, TaskAttempt, TaskExecution,
};
use crate::results::ExecutionResult;
use crate::{scheduler, Context, Error};

pub use crate::dal::pipeline_executions::{PipelineFilter as RunFilter, PruneFilter};

/// Creates a run of `workflow` at its live version with `input` (runners with that version pick
/// it up; on PostgreSQL they are woken at once).
pub fn start(
    conn: &mut AnyConnection,
    workflow: &str,
    input: &Context<Value>,
    now: DateTime<Utc>,
) -> Outcome<PipelineExecutionId> {
    crate::input::text("workflow", workflow, crate::input::MAX_NAME)?;
    crate::input::context("context", input)?;
    let wf = match live_version(conn, workflow, now)? {
        Ok(wf) => wf,
        Err(refused) => return Ok(Err(refused)),
    };
    let id = PipelineExecutionId::new();
    write_transaction(conn, |c| {
        let ended = scheduler::create_pipeline(c, &Faults::default(), id, &wf, input, now.into())?;
        if ended.is_none() {
            crate::database::notify_work(c, "operator")?;
        }
        Ok::<_, Error>(())
    })?;
    Ok(Ok(id))
}

/// Retries run `id`, which failed or was cancelled, as a new run of the same workflow (at its live
/// version) with the same input. The old run stays as it ended: its history is not rewritten.
pub fn retry(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<PipelineExecutionId> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    if !matches!(p.status, PipelineStatus::Failed | PipelineStatus::Cancelled) {
        return Ok(Err(wrong(&p, "retry", "Failed or Cancelled runs")));
    }
    let input = input_of(conn, &p)?;
    start(conn, &p.workflow_name, &input, now)
}

fn input_of(conn: &mut AnyConnection, p: &PipelineExecution) -> Result<Context<Value>, Error> {
    let value = match p.context_id {
        Some(cid) => contexts::get(conn, cid)?.unwrap_or(Value::Null),
        None => Value::Null,
    };
    Ok(if value.is_null() { Context::new() } else { Context::from_value(value)? })
}

fn wrong(p: &PipelineExecution, action: &'static str, applies_to: &'static str) -> Refused {
    Refused::WrongStatus { id: p.id, status: p.status, action, applies_to }
}

/// Cancels run `id` (Pending, Running or Paused): unstarted tasks never run; returns its status
/// after.
pub fn cancel(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<PipelineStatus> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    if pipelines::cancel(conn, id, now.into())? {
        return Ok(Ok(PipelineStatus::Cancelled));
    }
    let p = pipelines::get(conn, id)?.unwrap_or(p);
    Ok(Err(wrong(&p, "cancel", "Pending, Running or Paused runs")))
}

/// Pauses run `id` (Pending or Running): nothing new is claimed until it is resumed.
pub fn pause(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<PipelineStatus> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    let pausable = [PipelineStatus::Pending, PipelineStatus::Running];
    if pipelines::transition_from_any(conn, id, &pausable, PipelineStatus::Paused, now.into())? {
        return Ok(Ok(PipelineStatus::Paused));
    }
    Ok(Err(wrong(&p, "pause", "Pending or Running runs")))
}

/// What resuming a run did.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// Its status after: Running, or the end it reached while paused.
    pub status: PipelineStatus,
    /// The run's result when it ended in the resume's transaction (its tasks all finished while it
    /// was paused), for the waiters of the process that resumed it.
    pub ended: Option<ExecutionResult>,
}

/// Resumes paused run `id` and, in the same transaction, settles what finished while it was
/// paused (with the structure its version registered): it may end right there.
pub fn resume(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<Resumed> {
    resume_with(conn, id, now, &Faults::default())
}

/// [`resume`] with the faults a test armed for a runner.
pub(crate) fn resume_with(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    now: DateTime<Utc>,
    faults: &Faults,
) -> Outcome<Resumed> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    let workflow = match workflow_registry::get(conn, &p.workflow_name, &p.workflow_version)? {
        Some(entry) => Some(definition(entry)?),
        None => None, // recovery on a runner with the version settles it instead
    };
    let input = input_of(conn, &p)?;
    let info = PipelineInfo { id, workflow_name: p.workflow_name.clone(), workflow, created_at: p.created_at, input };
    let resumed = write_transaction(conn, |c| {
        let now = UniversalTimestamp::from(now);
        pipelines::lock(c, &[id])?;
        if !pipelines::transition(c, id, PipelineStatus::Paused, PipelineStatus::Running, None, now)? {
            return Ok::<_, Error>(None);
        }
        let ended = scheduler::settle_all(c, faults, &info, now)?.ended;
        if ended.is_none() {
            crate::database::notify_work(c, "operator")?; // its Ready tasks may be taken again
        }
        Ok(Some(ended))
    })?;
    match resumed {
        Some(ended) => {
            let status = ended.as_ref().map_or(PipelineStatus::Running, |r| r.status);
            Ok(Ok(Resumed { status, ended }))
        }
        None => Ok(Err(wrong(&p, "resume", "Paused runs"))),
    }
}

/// A keyset page's position: the creation time and id of the last run of the previous page,
/// written `<microseconds since the epoch>_<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last run's creation time.
    pub created_at: DateTime<Utc>,
    /// Its id.
    pub id: PipelineExecutionId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at.timestamp_micros(), self.id)
    }
}

/// A text that is not a cursor from a previous page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cursor from a previous page")]
pub struct BadCursor(String);

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(text.chars().take(64).collect());
        let (micros, id) = text.split_once('_').ok_or_else(bad)?;
        let created_at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
        Ok(Cursor { created_at, id: id.parse().map_err(|_| bad())? })
    }
}

/// One page of runs, newest first.
#[derive(Debug, Clone)]
pub struct RunsPage {
    /// The runs.
    pub runs: Vec<PipelineExecution>,
    /// Where the next page starts (by keyset), `None` on the last page.
    pub next: Option<Cursor>,
}

/// The runs `filter` selects, newest first, `filter.limit` of them, and where the next page
/// starts (keyset: pass it as `filter.after`; or page by `offset`).
pub fn list(conn: &mut AnyConnection, filter: &RunFilter) -> Result<RunsPage, Error> {
    if let Some(workflow) = &filter.workflow_name {
        crate::input::text("workflow", workflow, crate::input::MAX_NAME)?;
    }
    let limit = filter.limit as usize;
    let mut runs = pipelines::list(conn, &RunFilter { limit: filter.limit.saturating_add(1), ..filter.clone() })?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    let next = more.then(|| runs.last().map(|p| Cursor { created_at: p.created_at, id: p.id })).flatten();
    Ok(RunsPage { runs, next })
}

/// The result of run `id` as it stands (final once it ended); `None` when there is no such run.
pub fn result(conn: &mut AnyConnection, id: PipelineExecutionId) -> Result<Option<ExecutionResult>, Error> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(None) };
    assemble(conn, p).map(Some)
}

/// The result of run `id` once it ended, `None` while it has not; [`Error::ExecutionNotFound`]
/// when there is no such run.
pub fn final_result(conn: &mut AnyConnection, id: PipelineExecutionId) -> Result<Option<ExecutionResult>, Error> {
    let p = pipelines::get(conn, id)?.ok_or(Error::ExecutionNotFound(id))?;
    if !p.status.is_terminal() {
        return Ok(None);
    }
    assemble(conn, p).map(Some)
}

fn assemble(conn: &mut AnyConnection, p: PipelineExecution) -> Result<ExecutionResult, Error> {
    let rows = tasks::outcomes(conn, p.id)?;
    let output = p.final_context_id.map(|cid| contexts::get(conn, cid)).transpose()?.flatten();
    Ok(crate::results::execution_result(p, &rows, output)?)
}

/// A run's status, `None` when there is no such run.
pub fn status(conn: &mut AnyConnection, id: PipelineExecutionId) -> Result<Option<PipelineStatus>, Error> {
    Ok(pipelines::get(conn, id)?.map(|p| p.status))
}

/// Everything about one run: its tasks (attempts, errors, timings, leases), every attempt, what
/// recovery did, its input and output contexts, its version's task graph, and, while it is
/// unfinished, why it has not ended.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDetails {
    /// The run.
    pub run: PipelineExecution,
    /// Its input context.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub input: Option<Value>,
    /// Its final context, once it completed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub output: Option<Value>,
    /// Its tasks, in creation order.
    pub tasks: Vec<TaskExecution>,
    /// Every attempt of its tasks, in task order and by attempt number: who ran it, when, and how
    /// it ended (see [`task_attempts::history`]).
    pub attempts: Vec<TaskAttempt>,
    /// Recovery decisions about its tasks, oldest first.
    pub recovery_events: Vec<RecoveryEvent>,
    /// Why an unfinished run has not ended (empty once it has), each reason as a sentence.
    #[serde(serialize_with = "sentences")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub waiting: Vec<Waiting>,
    /// The task graph of its workflow version, as registered.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub graph: Option<Value>,
}

fn sentences<S: serde::Serializer>(reasons: &[Waiting], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(reasons.iter().map(ToString::to_string))
}

/// The details of run `id` as of `now`, or `None` if there is no such run.
pub fn details(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    now: DateTime<Utc>,
) -> Result<Option<RunDetails>, Error> {
    let Some(run) = pipelines::get(conn, id)? else { return Ok(None) };
    let live = Liveness::read(conn, now)?;
    let tasks = tasks::list_for_pipeline(conn, id)?;
    let waiting = waiting(&run, &tasks, &live, now);
    let input = run.context_id.map(|cid| contexts::get(conn, cid)).transpose()?.flatten();
    let output = run.final_context_id.map(|cid| contexts::get(conn, cid)).transpose()?.flatten();
    let graph = live.entry(&run).map(|e| e.graph.clone());
    Ok(Some(RunDetails {
        recovery_events: recovery_events::list_for_pipeline(conn, id)?,
        attempts: task_attempts::history(conn, id, &tasks)?,
        tasks,
        run,
        input,
        output,
        waiting,
        graph,
    }))
}

/// The pause between prune batches, so writers waiting for the database (a runner's outcomes, on
/// SQLite its one write lock) go between them.
pub const PRUNE_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// How many finished runs `filter` selects (a dry run of [`prune`]).
pub fn count_prunable(conn: &mut AnyConnection, filter: &PruneFilter) -> Result<i64, Error> {
    Ok(pipelines::count_prunable(conn, filter)?)
}

/// Deletes every finished run `filter` selects (with its tasks, outputs, recovery events and
/// context documents), `batch` runs per short transaction; on SQLite each batch is followed by a
/// passive WAL checkpoint. Between batches it calls `between`, which pauses (the caller's way:
/// [`PRUNE_PAUSE`]) and says whether to go on. Returns the runs deleted and the batches taken.
pub fn prune(
    conn: &mut AnyConnection,
    filter: &PruneFilter,
    batch: u32,
    mut between: impl FnMut() -> bool,
) -> Result<(usize, u32), Error> {
    let (mut deleted, mut batches) = (0usize, 0u32);
    loop {
        let n = pipelines::prune_batch(conn, filter, batch)?;
        if n == 0 {
            return Ok((deleted, batches));
        }
        deleted += n;
        batches += 1;
        crate::database::checkpoint_wal(conn)?;
        if !between() {
            return Ok((deleted, batches));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let created_at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        let cursor = Cursor { created_at, id: PipelineExecutionId::new() };
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        for bad in ["", "x", "12_", "_abc", "12_notauuid"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}
