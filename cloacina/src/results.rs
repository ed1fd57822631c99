//! What a finished pipeline reports: [`ExecutionResult`] and one [`TaskResult`] per task, built
//! from the rows the DAL returns. Public through [`crate::executor`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::dal::task_executions::TaskOutcome;
use crate::models::{PipelineExecution, PipelineExecutionId, PipelineStatus, TaskStatus};
use crate::task::TaskState;
use crate::Context;

/// The outcome of one task of a finished pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// Task id.
    pub task_name: String,
    /// Its state, as upstream reports it (`TaskState::Failed { error, .. }`, …); compares equal
    /// to the `TaskStatus` it stands for.
    pub status: TaskState,
    /// Its stored status (tells `NotStarted` from `Ready`).
    pub task_status: TaskStatus,
    /// Attempts made (0 for a task that never ran).
    pub attempts: u32,
    /// The same, as upstream Cloacina names and types it.
    pub attempt_count: i32,
    /// When the last attempt started, if it ran.
    pub start_time: Option<DateTime<Utc>>,
    /// When it reached its terminal status.
    pub end_time: Option<DateTime<Utc>>,
    /// The last error, if any (for a skipped task: nothing).
    pub error_message: Option<String>,
    /// Time from the start of the last attempt to the end, if it ran.
    pub duration: Option<Duration>,
}

/// The outcome of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionResult {
    /// The pipeline's id.
    pub execution_id: PipelineExecutionId,
    /// Workflow name.
    pub workflow_name: String,
    /// Terminal status.
    pub status: PipelineStatus,
    /// The final context: for a completed pipeline the input merged with every task's output;
    /// for a failed one the context of the task that completed last.
    pub final_context: Context<Value>,
    /// One entry per task, in creation order.
    pub task_results: Vec<TaskResult>,
    /// Why the pipeline failed, if it did.
    pub error_message: Option<String>,
    /// When the pipeline was created.
    pub start_time: DateTime<Utc>,
    /// When it reached its terminal status (`None` while it runs).
    pub end_time: Option<DateTime<Utc>>,
    /// Time from creation to the terminal status (`None` while it runs), as upstream.
    pub duration: Option<Duration>,
}

/// Time between two instants, when both are known (zero if they are out of order).
pub(crate) fn elapsed(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<Duration> {
    Some((to? - from?).to_std().unwrap_or_default())
}

/// One entry of [`ExecutionResult::task_results`].
pub(crate) fn task_result(t: &TaskOutcome) -> TaskResult {
    let attempts = if t.started_at.is_some() { t.attempt } else { 0 };
    TaskResult {
        task_name: t.task_name.clone(),
        status: TaskState::of(t.status, t.started_at, t.completed_at, t.error_details.as_deref()),
        task_status: t.status,
        attempts,
        attempt_count: i32::try_from(attempts).unwrap_or(i32::MAX),
        start_time: t.started_at,
        end_time: t.completed_at,
        error_message: t.error_details.clone(),
        duration: elapsed(t.started_at, t.completed_at),
    }
}

/// The result of a terminal pipeline `p`, from its task outcomes and final context.
pub(crate) fn execution_result(
    p: PipelineExecution,
    outcomes: &[TaskOutcome],
    final_context: Option<Value>,
) -> Result<ExecutionResult, crate::context::Error> {
    Ok(ExecutionResult {
        execution_id: p.id,
        workflow_name: p.workflow_name,
        status: p.status,
        final_context: final_context.map(Context::from_value).transpose()?.unwrap_or_default(),
        task_results: outcomes.iter().map(task_result).collect(),
        error_message: p.error_details,
        start_time: p.created_at,
        end_time: p.completed_at,
        duration: elapsed(Some(p.created_at), p.completed_at),
    })
}
