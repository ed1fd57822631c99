//! Operations on a database that need no running runner: looking at runs (with why one waits),
//! cancelling them, and reading the workflow registry. `cloacinactl` is built on these; the
//! runner uses the same functions, so the CLI and the library never disagree.

use chrono::{DateTime, Utc};

use crate::dal::{pipeline_executions as pipelines, recovery_events, task_executions as tasks, workflow_registry};
use crate::database::{AnyConnection, Result};
use crate::models::{PipelineExecution, PipelineExecutionId, RecoveryEvent, RegisteredWorkflow, TaskExecution};

/// Why an unfinished pipeline is not making progress: no live runner has its workflow version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaitingForVersion {
    /// The workflow.
    pub workflow_name: String,
    /// The version the pipeline started with.
    pub version: String,
    /// When a runner last had that version (`None` if no runner ever registered it).
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl std::fmt::Display for WaitingForVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waiting for a runner with version {} of workflow `{}`", self.version, self.workflow_name)?;
        match self.last_seen_at {
            Some(t) => write!(f, " (last seen {})", t.format("%Y-%m-%d %H:%M:%S UTC")),
            None => write!(f, " (never registered)"),
        }
    }
}

/// What the registry says about the runners: which versions are live now.
#[derive(Debug, Clone)]
pub struct Liveness {
    entries: Vec<RegisteredWorkflow>,
    now: DateTime<Utc>,
}

impl Liveness {
    /// Reads the registry once; answer many pipelines from it.
    pub fn read(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Self> {
        Ok(Self { entries: workflow_registry::list(conn)?, now })
    }

    /// `Some` when `pipeline` is unfinished and no live runner has its version.
    pub fn waiting(&self, pipeline: &PipelineExecution) -> Option<WaitingForVersion> {
        if pipeline.status.is_terminal() {
            return None;
        }
        let entry = self
            .entries
            .iter()
            .find(|e| e.workflow_name == pipeline.workflow_name && e.version == pipeline.workflow_version);
        if entry.is_some_and(|e| e.is_live(self.now)) {
            return None;
        }
        Some(WaitingForVersion {
            workflow_name: pipeline.workflow_name.clone(),
            version: pipeline.workflow_version.clone(),
            last_seen_at: entry.map(|e| e.last_seen_at),
        })
    }
}

/// Everything about one run: the pipeline, its tasks (attempts, errors, timings), what recovery
/// did, and, while it cannot progress, why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetails {
    /// The pipeline.
    pub pipeline: PipelineExecution,
    /// Its tasks, in creation order.
    pub tasks: Vec<TaskExecution>,
    /// Recovery decisions about its tasks, oldest first.
    pub recovery_events: Vec<RecoveryEvent>,
    /// Set while the pipeline is unfinished and no live runner has its workflow version.
    pub waiting: Option<WaitingForVersion>,
}

/// The details of run `id`, or `None` if there is no such run.
pub fn run_details(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    now: DateTime<Utc>,
) -> Result<Option<RunDetails>> {
    let Some(pipeline) = pipelines::get(conn, id)? else { return Ok(None) };
    let waiting = Liveness::read(conn, now)?.waiting(&pipeline);
    Ok(Some(RunDetails {
        tasks: tasks::list_for_pipeline(conn, id)?,
        recovery_events: recovery_events::list_for_pipeline(conn, id)?,
        pipeline,
        waiting,
    }))
}
