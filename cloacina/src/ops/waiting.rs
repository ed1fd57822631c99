//! Why an unfinished run has not ended: [`Waiting`], every reason at once, worked out from the
//! run's tasks, their leases and retries, and whether a live runner has its version.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::liveness::{Liveness, WaitingForVersion};
use crate::models::{PipelineExecution, PipelineStatus, TaskExecution, TaskStatus};

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

/// Each task's dependencies in the pipeline's workflow version, from the registered graph.
fn dependencies(live: &Liveness, pipeline: &PipelineExecution) -> HashMap<String, Vec<String>> {
    let Some(tasks) = live.entry(pipeline).and_then(|e| e.graph.get("tasks")?.as_array().cloned()) else {
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

/// Why `pipeline` (with `tasks`) has not ended, as of `now`.
pub(super) fn waiting(
    pipeline: &PipelineExecution,
    tasks: &[TaskExecution],
    live: &Liveness,
    now: DateTime<Utc>,
) -> Vec<Waiting> {
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
    let dependencies = dependencies(live, pipeline);
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
