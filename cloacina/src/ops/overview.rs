//! One workflow at a glance, for the dashboard's overview page and `GET
//! /api/v1/workflows/{name}/overview`: its runs per status over a time window, the duration
//! percentiles of each task that completed in it, and its Ready queue now.
//!
//! Read from the rows the engine keeps (no counters of its own): the window's runs by the
//! `created_at` index, their tasks 500 runs per statement by the pipeline index, the queue as
//! `/metrics` reads it. A window holding more than [`MAX_RUNS`] runs is summarised over its
//! newest [`MAX_RUNS`] and says so (`truncated`).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::outcome::{Outcome, Refused};
use crate::dal::pipeline_executions::{self as pipelines, PipelineFilter};
use crate::dal::task_executions as tasks;
use crate::database::{AnyConnection, UniversalTimestamp};
use crate::models::{PipelineExecutionId, TaskStatus};

/// The most runs one overview reads.
pub const MAX_RUNS: u32 = 10_000;

/// How many time buckets the window is cut into.
pub const BUCKETS: i64 = 24;

const RUNS_PER_READ: usize = 500;

/// A workflow at a glance.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Overview {
    /// The workflow.
    pub workflow: String,
    /// The window's start (runs created at or after it).
    pub since: DateTime<Utc>,
    /// The window's end: now.
    pub until: DateTime<Utc>,
    /// Each bucket's length.
    pub bucket_seconds: i64,
    /// Runs created in each bucket by their status now, oldest bucket first; every bucket is
    /// listed, empty ones too.
    pub buckets: Vec<StatusBucket>,
    /// Runs summarised.
    pub runs: u64,
    /// The window held more than [`MAX_RUNS`] runs: the newest of them are summarised.
    pub truncated: bool,
    /// Per task, the durations of its completed last attempts in the window's runs, by name.
    pub tasks: Vec<TaskDurations>,
    /// The workflow's Ready queue now.
    pub queue: Queue,
}

/// The runs created in one bucket, counted by status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusBucket {
    /// The bucket's start.
    pub start: DateTime<Utc>,
    /// Status (`Completed`, `Failed`, …) to count; statuses with none are left out.
    pub counts: BTreeMap<String, u64>,
}

/// How long a task's completed attempts took (nearest-rank percentiles).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskDurations {
    /// The task's id in the workflow.
    pub task_name: String,
    /// Completed tasks measured.
    pub completed: u64,
    /// Median, milliseconds.
    pub p50_ms: i64,
    /// 90th percentile, milliseconds.
    pub p90_ms: i64,
    /// 99th percentile, milliseconds.
    pub p99_ms: i64,
    /// Longest, milliseconds.
    pub max_ms: i64,
}

/// Tasks due to run and waiting for a runner.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Queue {
    /// Ready tasks due now.
    pub ready: i64,
    /// How long the longest-waiting of them has waited, in seconds.
    pub oldest_age_seconds: Option<f64>,
}

/// The overview of `workflow` over the runs created from `since` to `now` (`since` before
/// `now`); refused when no runner ever registered the workflow.
pub fn overview(
    conn: &mut AnyConnection,
    workflow: &str,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Outcome<Overview> {
    if !super::liveness::Liveness::read(conn, now)?.registry().iter().any(|e| e.workflow_name == workflow) {
        return Ok(Err(Refused::NoWorkflow(workflow.to_owned())));
    }
    let span = (now - since).num_milliseconds().max(1);
    // Whole seconds, so the buckets' starts read well.
    let bucket_ms = ((span + BUCKETS - 1) / BUCKETS + 999) / 1000 * 1000;
    let filter = PipelineFilter {
        workflow_name: Some(workflow.to_owned()),
        since: Some(since),
        limit: MAX_RUNS + 1,
        ..PipelineFilter::default()
    };
    let mut runs = pipelines::list(conn, &filter)?;
    let truncated = runs.len() > MAX_RUNS as usize;
    runs.truncate(MAX_RUNS as usize);

    let mut buckets: Vec<StatusBucket> = (0..BUCKETS)
        .map(|i| StatusBucket { start: since + Duration::milliseconds(i * bucket_ms), counts: BTreeMap::new() })
        .collect();
    for run in &runs {
        let at = (run.created_at - since).num_milliseconds().clamp(0, span - 1);
        let slot = usize::try_from(at / bucket_ms).unwrap_or(0).min(buckets.len() - 1);
        *buckets[slot].counts.entry(run.status.as_str().to_owned()).or_default() += 1;
    }

    let ids: Vec<PipelineExecutionId> = runs.iter().map(|r| r.id).collect();
    let mut durations: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for chunk in ids.chunks(RUNS_PER_READ) {
        for task in tasks::changed_since(conn, chunk, since)? {
            if let (TaskStatus::Completed, Some(from), Some(to)) = (task.status, task.started_at, task.completed_at) {
                durations.entry(task.task_name).or_default().push((to - from).num_milliseconds().max(0));
            }
        }
    }
    let tasks = durations
        .into_iter()
        .map(|(task_name, mut ms)| {
            ms.sort_unstable();
            TaskDurations {
                task_name,
                completed: ms.len() as u64,
                p50_ms: nearest_rank(&ms, 50),
                p90_ms: nearest_rank(&ms, 90),
                p99_ms: nearest_rank(&ms, 99),
                max_ms: ms.last().copied().unwrap_or(0),
            }
        })
        .collect();

    let ready =
        tasks::ready_queues(conn, UniversalTimestamp::from(now))?.into_iter().find(|q| q.workflow_name == workflow);
    let queue = Queue {
        ready: ready.as_ref().map_or(0, |q| q.tasks),
        oldest_age_seconds: ready.and_then(|q| q.oldest).map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
    };
    Ok(Ok(Overview {
        workflow: workflow.to_owned(),
        since,
        until: now,
        bucket_seconds: bucket_ms / 1000,
        buckets,
        runs: runs.len() as u64,
        truncated,
        tasks,
        queue,
    }))
}

/// The `p`th percentile of `sorted` by nearest rank (0 for none).
fn nearest_rank(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::nearest_rank;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<i64> = (1..=100).collect();
        assert_eq!((nearest_rank(&ms, 50), nearest_rank(&ms, 90), nearest_rank(&ms, 99)), (50, 90, 99));
        assert_eq!(nearest_rank(&[7], 99), 7);
        assert_eq!(nearest_rank(&[1, 2, 3], 50), 2);
        assert_eq!(nearest_rank(&[], 50), 0);
    }
}
