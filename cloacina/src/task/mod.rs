//! The authoring model of one task: its error type, its trigger rules, and what its code can
//! learn about the attempt it runs in ([`TaskAttempt::current`]). No database.

mod trigger;

pub use trigger::{TaskOutcomes, TriggerRule, ValueOperator};

use crate::models::{PipelineExecutionId, TaskExecutionId};

tokio::task_local! {
    static CURRENT: TaskAttempt;
}

/// The attempt a task's code is running in, for idempotent side effects: what the code does
/// outside the database may happen again if the attempt is repeated (delivery is at least once),
/// and these values tell one execution from another.
///
/// - `task_execution_id` is the same for every attempt of this task in this run: key a side effect
///   on it to make it happen once per run, however often the task is repeated.
/// - `attempt` grows with every execution of the task (retries, recovery after a crash, release
///   at a shutdown), so `(task_execution_id, attempt)` names exactly one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskAttempt {
    /// The run (pipeline execution).
    pub pipeline_execution_id: PipelineExecutionId,
    /// This task's row in the run.
    pub task_execution_id: TaskExecutionId,
    /// The workflow.
    pub workflow_name: String,
    /// The task's id within the workflow.
    pub task_name: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts the task may make in all.
    pub max_attempts: u32,
}

impl TaskAttempt {
    /// The attempt the calling task code runs in; `None` outside task code (and in tasks the
    /// code spawns itself with `tokio::spawn`, which do not inherit it).
    pub fn current() -> Option<TaskAttempt> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `fut` with `self` as the current attempt (the engine does this for each attempt).
    pub(crate) async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }
}

/// Why a task did not succeed. Retryable errors use the task's retry policy; fatal ones fail the
/// task at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A transient failure (a timeout, an unavailable service): another attempt may succeed.
    #[error("{0}")]
    Retryable(String),
    /// A permanent failure (bad input, a bug): retrying will not help.
    #[error("{0}")]
    Fatal(String),
    /// The attempt exceeded its timeout (retryable).
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl TaskError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError::Retryable(message.into())
    }

    /// A failure not worth retrying.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError::Fatal(message.into())
    }

    /// True when the retry policy applies.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TaskError::Retryable(_) | TaskError::Timeout(_))
    }
}

/// A context error inside a task (a missing key, a wrong type) is a bug in the workflow: fatal.
impl From<crate::context::Error> for TaskError {
    fn from(e: crate::context::Error) -> Self {
        TaskError::Fatal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(TaskError::retryable("x").is_retryable());
        assert!(TaskError::Timeout(std::time::Duration::from_secs(1)).is_retryable());
        assert!(!TaskError::fatal("x").is_retryable());
        fn uses_question_mark() -> Result<(), TaskError> {
            let mut ctx = crate::Context::new();
            ctx.insert("k", serde_json::json!(1))?;
            ctx.insert("k", serde_json::json!(2))?;
            Ok(())
        }
        assert_eq!(
            uses_question_mark(),
            Err(TaskError::Fatal("context key `k` already exists (use update or insert_or_update)".into()))
        );
    }
}
