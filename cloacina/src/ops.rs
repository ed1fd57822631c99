//! Operator actions that need no runner and no task code, for the HTTP server and `cloacinactl`:
//! start a run of a registered workflow, retry a finished run, and cancel, pause or resume one.
//! A run is created at the workflow's live version, from the task graph the registry recorded
//! (the structure a runner registered); runners that have that version pick it up.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::admin::is_live;
use crate::dal::{contexts, pipeline_executions as pipelines, workflow_registry, write_transaction};
use crate::database::{AnyConnection, UniversalTimestamp};
use crate::engine::PipelineInfo;
use crate::faults::Faults;
use crate::models::{PipelineExecution, PipelineExecutionId, PipelineStatus, RegisteredWorkflow};
use crate::workflow::{TaskSpec, Workflow, WorkflowSpec};
use crate::{scheduler, Context, Error};

/// Why an operator action was refused (as opposed to failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// No run has that id.
    #[error("no run {0}")]
    NoRun(PipelineExecutionId),
    /// No runner ever registered the workflow.
    #[error("no workflow named `{0}` is registered")]
    NoWorkflow(String),
    /// The run is not in a status the action applies to.
    #[error("run {id} is {status}: {action} applies to {applies_to}")]
    WrongStatus {
        /// The run.
        id: PipelineExecutionId,
        /// Its status.
        status: PipelineStatus,
        /// The action.
        action: &'static str,
        /// The statuses it applies to.
        applies_to: &'static str,
    },
}

/// What an action did: `Ok(Ok(x))` done, `Ok(Err(refused))` refused, `Err` failed.
pub type Outcome<T> = Result<Result<T, Refused>, Error>;

/// The version a new run of `workflow` starts at: the newest version a live runner has, else the
/// newest version ever registered. `None` when no runner registered the workflow.
pub fn live_version(conn: &mut AnyConnection, workflow: &str, now: DateTime<Utc>) -> Result<Option<Workflow>, Error> {
    let mut entries: Vec<RegisteredWorkflow> =
        workflow_registry::list(conn)?.into_iter().filter(|e| e.workflow_name == workflow).collect();
    entries.sort_by_key(|e| (is_live(e, now), e.last_seen_at));
    entries.pop().map(definition).transpose()
}

/// The code-less workflow of a registry entry; its version must come out as recorded.
fn definition(entry: RegisteredWorkflow) -> Result<Workflow, Error> {
    let corrupt =
        |detail: String| Error::Database(crate::database::Error::Corrupt { table: "workflow_registry", detail });
    let tasks: Vec<TaskSpec> = serde_json::from_value(entry.graph.get("tasks").cloned().unwrap_or(Value::Null))
        .map_err(|e| corrupt(format!("graph of {} {}: {e}", entry.workflow_name, entry.version)))?;
    let spec = WorkflowSpec::new(entry.workflow_name.clone(), None, tasks)?;
    if spec.version() != entry.version {
        return Err(corrupt(format!(
            "graph of {} hashes to {}, recorded as {}",
            entry.workflow_name,
            spec.version(),
            entry.version
        )));
    }
    Ok(Workflow::definition_only(spec))
}

/// Creates a run of `workflow` at its live version with `input` (runners with that version pick
/// it up; on PostgreSQL they are woken at once).
pub fn start_run(
    conn: &mut AnyConnection,
    workflow: &str,
    input: &Context<Value>,
    now: DateTime<Utc>,
) -> Outcome<PipelineExecutionId> {
    crate::input::text("workflow", workflow, crate::input::MAX_NAME)?;
    crate::input::context("context", input)?;
    let Some(wf) = live_version(conn, workflow, now)? else { return Ok(Err(Refused::NoWorkflow(workflow.to_owned()))) };
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

/// Creates a cron schedule from `config` for a registered workflow (a workflow no runner ever
/// registered is refused, as [`start_run`] refuses it).
pub fn create_schedule(
    conn: &mut AnyConnection,
    config: &crate::cron::ScheduleConfig,
    now: DateTime<Utc>,
) -> Outcome<crate::models::CronSchedule> {
    crate::input::text("workflow", &config.workflow, crate::input::MAX_NAME)?;
    if live_version(conn, &config.workflow, now)?.is_none() {
        return Ok(Err(Refused::NoWorkflow(config.workflow.clone())));
    }
    Ok(Ok(crate::cron::create(conn, config, now)?))
}

/// Retries run `id`, which failed or was cancelled, as a new run of the same workflow (at its live
/// version) with the same input. The old run stays as it ended: its history is not rewritten.
pub fn retry_run(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    now: DateTime<Utc>,
) -> Outcome<PipelineExecutionId> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    if !matches!(p.status, PipelineStatus::Failed | PipelineStatus::Cancelled) {
        return Ok(Err(wrong(&p, "retry", "Failed or Cancelled runs")));
    }
    let input = input_of(conn, &p)?;
    start_run(conn, &p.workflow_name, &input, now)
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

/// Cancels run `id` (Pending, Running or Paused): unstarted tasks never run.
pub fn cancel_run(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<()> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    if pipelines::cancel(conn, id, now.into())? {
        return Ok(Ok(()));
    }
    let p = pipelines::get(conn, id)?.unwrap_or(p);
    Ok(Err(wrong(&p, "cancel", "Pending, Running or Paused runs")))
}

/// Pauses run `id` (Pending or Running): nothing new is claimed until it is resumed.
pub fn pause_run(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<()> {
    let Some(p) = pipelines::get(conn, id)? else { return Ok(Err(Refused::NoRun(id))) };
    let pausable = [PipelineStatus::Pending, PipelineStatus::Running];
    if pipelines::transition_from_any(conn, id, &pausable, PipelineStatus::Paused, now.into())? {
        return Ok(Ok(()));
    }
    Ok(Err(wrong(&p, "pause", "Pending or Running runs")))
}

/// Resumes paused run `id` and, in the same transaction, settles what finished while it was
/// paused (with the structure its version registered).
pub fn resume_run(conn: &mut AnyConnection, id: PipelineExecutionId, now: DateTime<Utc>) -> Outcome<()> {
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
            return Ok::<_, Error>(false);
        }
        let ended = scheduler::settle_all(c, &Faults::default(), &info, now)?.ended;
        if ended.is_none() {
            crate::database::notify_work(c, "operator")?;
        }
        Ok(true)
    })?;
    if resumed {
        Ok(Ok(()))
    } else {
        Ok(Err(wrong(&p, "resume", "Paused runs")))
    }
}

/// The pause between prune batches, so writers waiting for the database (a runner's outcomes, on
/// SQLite its one write lock) go between them.
pub const PRUNE_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Deletes every finished run `filter` selects, `batch` runs per transaction with
/// [`PRUNE_PAUSE`] between batches; returns the runs deleted and the batches taken.
pub fn prune_runs(
    conn: &mut AnyConnection,
    filter: &pipelines::PruneFilter,
    batch: u32,
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
        std::thread::sleep(PRUNE_PAUSE);
    }
}
