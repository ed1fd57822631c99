//! A task's error type ([`TaskError`]) and where a task stands in a result ([`TaskState`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::rules::{TaskOutcomes, TriggerRule, ValueOperator};
use crate::TaskStatus;

/// Why a task did not succeed: upstream Cloacina's variants, plus [`TaskError::Fatal`]. Whether a
/// failed attempt is retried is decided by the task's [`RetryPolicy`](crate::retry::RetryPolicy)
/// (its attempts and [`RetryCondition`](crate::retry::RetryCondition)s; by default every error
/// retries), except that a `Fatal` error never is.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's work failed.
    #[error("Task execution failed: {message}")]
    ExecutionFailed {
        /// What went wrong.
        message: String,
        /// The task.
        task_id: String,
        /// When.
        timestamp: chrono::DateTime<chrono::Utc>,
    },
    /// Something the task needs from a dependency is missing.
    #[error("Task dependency not satisfied: {dependency} required by {task_id}")]
    DependencyNotSatisfied {
        /// The dependency.
        dependency: String,
        /// The task.
        task_id: String,
    },
    /// The attempt exceeded the task's timeout.
    #[error("Task timeout: {task_id} exceeded {timeout_seconds}s")]
    Timeout {
        /// The task.
        task_id: String,
        /// The timeout, in whole seconds.
        timeout_seconds: u64,
    },
    /// A context operation failed inside the task.
    #[error("Context error in task {task_id}: {error}")]
    ContextError {
        /// The task.
        task_id: String,
        /// The context error.
        error: crate::context::Error,
    },
    /// The task's input is not acceptable.
    #[error("Task validation failed: {message}")]
    ValidationFailed {
        /// Why.
        message: String,
    },
    /// Anything else.
    #[error("Unknown error in task {task_id}: {message}")]
    Unknown {
        /// The task.
        task_id: String,
        /// What went wrong.
        message: String,
    },
    /// A readiness check failed.
    #[error("Task readiness check failed: {task_id}")]
    ReadinessCheckFailed {
        /// The task.
        task_id: String,
    },
    /// A trigger rule could not be evaluated.
    #[error("Trigger rule evaluation failed: {task_id}")]
    TriggerRuleFailed {
        /// The task.
        task_id: String,
    },
    /// A permanent failure no retry condition retries (a Cloacina addition: bad input, a bug).
    #[error("{message}")]
    Fatal {
        /// What went wrong.
        message: String,
    },
}

/// Where a task stands in a result, as upstream Cloacina reports it (`TaskResult::status`); the
/// stored [`TaskStatus`] is `TaskResult::task_status`. Compares equal to the `TaskStatus` it
/// stands for (`Pending` to `NotStarted` and `Ready`; `Skipped` to `Skipped` and `Cancelled`,
/// which upstream does not have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Not started yet (waiting for its dependencies, or Ready).
    Pending,
    /// An attempt is running.
    Running {
        /// When it started.
        start_time: DateTime<Utc>,
    },
    /// It succeeded.
    Completed {
        /// When.
        completion_time: DateTime<Utc>,
    },
    /// It failed for good.
    Failed {
        /// The last error.
        error: String,
        /// When.
        failure_time: DateTime<Utc>,
    },
    /// Its trigger rule did not hold.
    Skipped {
        /// Why.
        reason: String,
        /// When it was decided.
        skip_time: DateTime<Utc>,
    },
}

impl TaskState {
    /// The state of a task with status `status`, its last attempt's start, its end and its
    /// last error.
    pub fn of(
        status: TaskStatus,
        started: Option<DateTime<Utc>>,
        ended: Option<DateTime<Utc>>,
        error: Option<&str>,
    ) -> Self {
        let at = |t: Option<DateTime<Utc>>| t.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        match status {
            TaskStatus::NotStarted | TaskStatus::Ready => TaskState::Pending,
            TaskStatus::Running => TaskState::Running { start_time: at(started) },
            TaskStatus::Completed => TaskState::Completed { completion_time: at(ended) },
            TaskStatus::Failed => {
                TaskState::Failed { error: error.unwrap_or("failed").to_owned(), failure_time: at(ended) }
            }
            TaskStatus::Skipped => TaskState::Skipped {
                reason: error.unwrap_or("its trigger rule did not hold").to_owned(),
                skip_time: at(ended),
            },
            TaskStatus::Cancelled => TaskState::Skipped {
                reason: error.unwrap_or("its pipeline was cancelled").to_owned(),
                skip_time: at(ended),
            },
        }
    }

    /// Completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, TaskState::Completed { .. })
    }

    /// Failed.
    pub fn is_failed(&self) -> bool {
        matches!(self, TaskState::Failed { .. })
    }

    /// Running.
    pub fn is_running(&self) -> bool {
        matches!(self, TaskState::Running { .. })
    }

    /// Not started.
    pub fn is_pending(&self) -> bool {
        matches!(self, TaskState::Pending)
    }

    /// Skipped.
    pub fn is_skipped(&self) -> bool {
        matches!(self, TaskState::Skipped { .. })
    }
}

/// `Pending`, `Running`, `Completed`, `Failed: <error>`, `Skipped: <reason>`.
impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskState::Pending => f.write_str("Pending"),
            TaskState::Running { .. } => f.write_str("Running"),
            TaskState::Completed { .. } => f.write_str("Completed"),
            TaskState::Failed { error, .. } => write!(f, "Failed: {error}"),
            TaskState::Skipped { reason, .. } => write!(f, "Skipped: {reason}"),
        }
    }
}

impl PartialEq<TaskStatus> for TaskState {
    fn eq(&self, status: &TaskStatus) -> bool {
        match self {
            TaskState::Pending => matches!(status, TaskStatus::NotStarted | TaskStatus::Ready),
            TaskState::Running { .. } => *status == TaskStatus::Running,
            TaskState::Completed { .. } => *status == TaskStatus::Completed,
            TaskState::Failed { .. } => *status == TaskStatus::Failed,
            TaskState::Skipped { .. } => matches!(status, TaskStatus::Skipped | TaskStatus::Cancelled),
        }
    }
}

/// Words that make an `ExecutionFailed` or `Unknown` error transient (upstream's list).
const TRANSIENT_WORDS: [&str; 8] =
    ["connection", "network", "timeout", "temporary", "unavailable", "busy", "overloaded", "rate limit"];

impl TaskError {
    /// A failure worth retrying: [`TaskError::ExecutionFailed`], now. Its `task_id` is left
    /// empty: the engine fills it in ([`TaskError::for_task`]) when the attempt ends.
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError::ExecutionFailed { message: message.into(), task_id: String::new(), timestamp: chrono::Utc::now() }
    }

    /// A failure never retried, whatever the task's retry conditions: [`TaskError::Fatal`].
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError::Fatal { message: message.into() }
    }

    /// True for errors upstream calls transient (what `RetryCondition::TransientOnly` retries): a
    /// timeout, or an execution failure or unknown error whose message names a transient cause
    /// (connection, network, timeout, temporary, unavailable, busy, overloaded, rate limit).
    pub fn is_transient(&self) -> bool {
        match self {
            TaskError::Timeout { .. } => true,
            TaskError::ExecutionFailed { message, .. } | TaskError::Unknown { message, .. } => {
                let message = message.to_lowercase();
                TRANSIENT_WORDS.iter().any(|w| message.contains(w))
            }
            _ => false,
        }
    }

    /// The error with `task` as its `task_id` where the task's code left it empty (the engine
    /// and `cloacina-testing` call it on every error a task returns).
    pub fn for_task(mut self, task: &str) -> Self {
        match &mut self {
            TaskError::ExecutionFailed { task_id, .. }
            | TaskError::DependencyNotSatisfied { task_id, .. }
            | TaskError::Timeout { task_id, .. }
            | TaskError::ContextError { task_id, .. }
            | TaskError::Unknown { task_id, .. }
            | TaskError::ReadinessCheckFailed { task_id }
            | TaskError::TriggerRuleFailed { task_id } => {
                if task_id.is_empty() {
                    task.clone_into(task_id);
                }
            }
            TaskError::ValidationFailed { .. } | TaskError::Fatal { .. } => {}
        }
        self
    }

    /// True when a retry condition may retry it (everything but [`TaskError::Fatal`]).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TaskError::Fatal { .. })
    }
}

/// A context error inside a task (a missing key, a wrong type) becomes
/// [`TaskError::ContextError`]; the engine fills in the task id ([`TaskError::for_task`]).
impl From<crate::context::Error> for TaskError {
    fn from(error: crate::context::Error) -> Self {
        TaskError::ContextError { task_id: String::new(), error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let timeout = TaskError::Timeout { task_id: "t".into(), timeout_seconds: 1 };
        assert!(timeout.is_transient() && timeout.is_retryable());
        assert!(TaskError::retryable("connection reset").is_transient());
        assert!(!TaskError::retryable("bad row").is_transient(), "no transient word");
        assert!(TaskError::retryable("bad row").is_retryable());
        assert!(!TaskError::ValidationFailed { message: "network".into() }.is_transient());
        assert!(!TaskError::fatal("x").is_retryable());
        assert_eq!(TaskError::retryable("x").to_string(), "Task execution failed: x");
        let named = TaskError::Unknown { task_id: String::new(), message: "m".into() }.for_task("load");
        assert_eq!(named.to_string(), "Unknown error in task load: m");
        let kept = TaskError::Unknown { task_id: "own".into(), message: "m".into() }.for_task("load");
        assert_eq!(kept.to_string(), "Unknown error in task own: m", "an id the code set is kept");
        fn uses_question_mark() -> Result<(), TaskError> {
            let mut ctx = crate::Context::new();
            ctx.insert("k", serde_json::json!(1))?;
            ctx.insert("k", serde_json::json!(2))?;
            Ok(())
        }
        assert_eq!(
            uses_question_mark(),
            Err(TaskError::ContextError {
                task_id: String::new(),
                error: crate::context::Error::KeyExists("k".into())
            })
        );
    }
}
