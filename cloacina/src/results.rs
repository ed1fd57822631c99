//! What a finished pipeline reports: [`ExecutionResult`] and one [`TaskResult`] per task, built
//! from the rows the DAL returns. Public through [`crate::executor`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::dal::task_executions::TaskOutcome;
use crate::models::{PipelineExecution, PipelineExecutionId, PipelineStatus, TaskStatus};
use crate::Context;

/// The outcome of one task of a finished pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// Task id.
    pub task_name: String,
    /// Final status.
    pub status: TaskStatus,
    /// Attempts made (0 for a task that never ran).
    pub attempts: u32,
    /// The last error, if any.
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
    /// The final context (empty unless the pipeline completed).
    pub final_context: Context<Value>,
    /// One entry per task, in creation order.
    pub task_results: Vec<TaskResult>,
    /// Why the pipeline failed, if it did.
    pub error_message: Option<String>,
    /// Time from creation to the terminal status.
    pub duration: Duration,
}

/// Time between two instants, when both are known (zero if they are out of order).
pub(crate) fn elapsed(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<Duration> {
    Some((to? - from?).to_std().unwrap_or_default())
}

/// One entry of [`ExecutionResult::task_results`].
pub(crate) fn task_result(t: &TaskOutcome) -> TaskResult {
    TaskResult {
        task_name: t.task_name.clone(),
        status: t.status,
        attempts: if t.started_at.is_some() { t.attempt } else { 0 },
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
        duration: elapsed(Some(p.created_at), p.completed_at).unwrap_or_default(),
    })
}
