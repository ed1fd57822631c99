//! Operations on a database that need no running runner: looking at runs (with why one waits),
//! cancelling them, and reading the workflow registry. `cloacinactl` is built on these; the
//! runner uses the same functions, so the CLI and the library never disagree.

pub mod copy;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::dal::{
    pipeline_executions as pipelines, recovery_events, task_attempts, task_executions as tasks, workflow_registry,
};
use crate::database::{AnyConnection, Result};
use crate::models::{
    PipelineExecution, PipelineExecutionId, PipelineStatus, RecoveryEvent, RegisteredWorkflow, TaskAttempt,
    TaskExecution, TaskStatus,
};

/// A registry entry is live while a runner refreshed it within this window (runners refresh it
/// every [`workflow_registry::REFRESH_INTERVAL`]).
pub const LIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// True when a runner had `entry`'s version within [`LIVE_WINDOW`] before `now`.
pub fn is_live(entry: &RegisteredWorkflow, now: DateTime<Utc>) -> bool {
    entry.last_seen_at + chrono::Duration::from_std(LIVE_WINDOW).unwrap_or_default() >= now
}

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

    fn entry(&self, pipeline: &PipelineExecution) -> Option<&RegisteredWorkflow> {
        self.entries
            .iter()
            .find(|e| e.workflow_name == pipeline.workflow_name && e.version == pipeline.workflow_version)
    }

    /// `Some` when `pipeline` is unfinished and no live runner has its version.
    pub fn waiting(&self, pipeline: &PipelineExecution) -> Option<WaitingForVersion> {
        if pipeline.status.is_terminal() {
            return None;
        }
        let entry = self.entry(pipeline);
        if entry.is_some_and(|e| is_live(e, self.now)) {
            return None;
        }
        Some(WaitingForVersion {
            workflow_name: pipeline.workflow_name.clone(),
            version: pipeline.workflow_version.clone(),
            last_seen_at: entry.map(|e| e.last_seen_at),
        })
    }

    /// Each task's dependencies in the pipeline's workflow version, from the registered graph.
    fn dependencies(&self, pipeline: &PipelineExecution) -> HashMap<String, Vec<String>> {
        let Some(tasks) = self.entry(pipeline).and_then(|e| e.graph.get("tasks")?.as_array().cloned()) else {
            return HashMap::new();
        };
        tasks
            .iter()
            .filter_map(|t| {
                let id = t.get("id")?.as_str()?.to_owned();
                let deps = t.get("dependencies")?.as_array()?.iter().filter_map(|d| Some(d.as_str()?.to_owned()));
                Some((id, deps.collect()))
            })
            .collect()
    }
}

/// One reason an unfinished pipeline has not ended yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Waiting {
    /// No live runner has the pipeline's workflow version.
    NoRunnerWithVersion(WaitingForVersion),
    /// The pipeline is paused: nothing is claimed until it is resumed.
    Paused,
    /// Tasks run on `runner`, whose lease is current.
    Running {
        /// The runner holding the claims.
        runner: String,
        /// How many tasks.
        tasks: usize,
        /// When the latest of their leases runs out unless renewed.
        lease_until: DateTime<Utc>,
    },
    /// `runner` stopped renewing the leases of these tasks (it crashed, stalled or lost the
    /// database); recovery on a live runner with the version hands them on.
    LeaseExpired {
        /// The runner that held the claims.
        runner: String,
        /// How many tasks.
        tasks: usize,
        /// When the first of their leases ran out.
        expired_at: DateTime<Utc>,
    },
    /// Tasks wait for the time of their next attempt.
    RetryWaiting {
        /// How many tasks.
        tasks: usize,
        /// The earliest retry time.
        next_at: DateTime<Utc>,
    },
    /// Tasks are Ready and wait for a free slot on a live runner with the version (with no such
    /// runner, [`Waiting::NoRunnerWithVersion`] is the reason instead).
    Ready {
        /// How many tasks.
        tasks: usize,
    },
    /// Tasks whose dependencies have all ended are not decided yet (Ready or Skipped). With
    /// nothing else in flight this is a pipeline standing still; recovery on a live runner with
    /// the version decides them within its recovery interval.
    Undecided {
        /// Their names (at most ten).
        tasks: Vec<String>,
    },
    /// Every task has ended but the pipeline's end is not recorded yet (recovery records it).
    Ending,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string();
        match self {
            Waiting::NoRunnerWithVersion(v) => v.fmt(f),
            Waiting::Paused => f.write_str("paused: nothing runs until it is resumed"),
            Waiting::Running { runner, tasks, lease_until } => {
                write!(f, "{tasks} task(s) running on runner {runner} (lease until {})", time(lease_until))
            }
            Waiting::LeaseExpired { runner, tasks, expired_at } => write!(
                f,
                "{tasks} task(s) held by runner {runner}, which stopped renewing (lease expired {}); recovery hands \
                 them on",
                time(expired_at)
            ),
            Waiting::RetryWaiting { tasks, next_at } => {
                write!(f, "{tasks} task(s) waiting to retry (next at {})", time(next_at))
            }
            Waiting::Ready { tasks } => write!(f, "{tasks} task(s) ready, waiting for a free runner slot"),
            Waiting::Undecided { tasks } => {
                write!(f, "dependents being resolved: {} (their dependencies have ended)", tasks.join(", "))
            }
            Waiting::Ending => f.write_str("every task has ended; the pipeline's end is being recorded"),
        }
    }
}

/// Everything about one run: the pipeline, its tasks (attempts, errors, timings), what recovery
/// did, and, while it is unfinished, why it has not ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetails {
    /// The pipeline.
    pub pipeline: PipelineExecution,
    /// Its tasks, in creation order.
    pub tasks: Vec<TaskExecution>,
    /// Every attempt of its tasks, in task order and by attempt number: who ran it, when, and how
    /// it ended (see [`task_attempts::history`]).
    pub attempts: Vec<TaskAttempt>,
    /// Recovery decisions about its tasks, oldest first.
    pub recovery_events: Vec<RecoveryEvent>,
    /// Why an unfinished pipeline has not ended (empty once it has).
    pub waiting: Vec<Waiting>,
}

/// The details of run `id`, or `None` if there is no such run.
pub fn run_details(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    now: DateTime<Utc>,
) -> Result<Option<RunDetails>> {
    let Some(pipeline) = pipelines::get(conn, id)? else { return Ok(None) };
    let live = Liveness::read(conn, now)?;
    let tasks = tasks::list_for_pipeline(conn, id)?;
    let waiting = waiting(&pipeline, &tasks, &live, now);
    Ok(Some(RunDetails {
        recovery_events: recovery_events::list_for_pipeline(conn, id)?,
        attempts: task_attempts::history(conn, id, &tasks)?,
        tasks,
        pipeline,
        waiting,
    }))
}

/// Why `pipeline` (with `tasks`) has not ended, as of `now`.
fn waiting(pipeline: &PipelineExecution, tasks: &[TaskExecution], live: &Liveness, now: DateTime<Utc>) -> Vec<Waiting> {
    if pipeline.status.is_terminal() {
        return Vec::new();
    }
    let mut reasons = Vec::new();
    let no_runner = live.waiting(pipeline);
    let runner_live = no_runner.is_none();
    if let Some(v) = no_runner {
        reasons.push(Waiting::NoRunnerWithVersion(v));
    }
    if pipeline.status == PipelineStatus::Paused {
        reasons.push(Waiting::Paused);
    }
    let (mut running, mut expired) = (BTreeMap::new(), BTreeMap::new());
    let (mut ready, mut retrying, mut next_retry) = (0, 0, None::<DateTime<Utc>>);
    for t in tasks {
        match (t.status, t.lease_expires_at, &t.claimed_by) {
            (TaskStatus::Running, Some(lease), Some(runner)) if lease >= now => {
                let e = running.entry(runner.clone()).or_insert((0, lease));
                *e = (e.0 + 1, e.1.max(lease));
            }
            (TaskStatus::Running, Some(lease), Some(runner)) => {
                let e = expired.entry(runner.clone()).or_insert((0, lease));
                *e = (e.0 + 1, e.1.min(lease));
            }
            (TaskStatus::Ready, ..) => match t.retry_at.filter(|at| *at > now) {
                Some(at) => {
                    retrying += 1;
                    next_retry = Some(next_retry.map_or(at, |n| n.min(at)));
                }
                None => ready += 1,
            },
            _ => {}
        }
    }
    for (runner, (tasks, lease_until)) in running {
        reasons.push(Waiting::Running { runner, tasks, lease_until });
    }
    for (runner, (tasks, expired_at)) in expired {
        reasons.push(Waiting::LeaseExpired { runner, tasks, expired_at });
    }
    if let Some(next_at) = next_retry {
        reasons.push(Waiting::RetryWaiting { tasks: retrying, next_at });
    }
    // Ready tasks wait for a free slot only where a runner with the version is up; otherwise
    // they wait for such a runner, which the reason above already says.
    if ready > 0 && runner_live {
        reasons.push(Waiting::Ready { tasks: ready });
    }
    let status: HashMap<&str, TaskStatus> = tasks.iter().map(|t| (t.task_name.as_str(), t.status)).collect();
    let dependencies = live.dependencies(pipeline);
    let undecided: Vec<String> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::NotStarted)
        .filter(|t| {
            dependencies
                .get(&t.task_name)
                .is_some_and(|deps| deps.iter().all(|d| status.get(d.as_str()).is_some_and(|s| s.is_terminal())))
        })
        .map(|t| t.task_name.clone())
        .take(10)
        .collect();
    if !undecided.is_empty() {
        reasons.push(Waiting::Undecided { tasks: undecided });
    }
    if tasks.iter().all(|t| t.status.is_terminal()) {
        reasons.push(Waiting::Ending);
    }
    reasons
}
