//! The authoring model of one task: its error type, its trigger rules, and what its code can
//! learn about the attempt it runs in ([`TaskAttempt::current`]). No database.

mod trigger;

pub use trigger::{TaskOutcomes, TriggerRule, ValueOperator};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::models::{PipelineExecutionId, TaskExecutionId, TaskStatus};

tokio::task_local! {
    static CURRENT: TaskAttempt;
    static SLOT: AttemptSlot;
}

/// The attempt's concurrency slot, shared by the engine and the task's [`TaskHandle`]: `None`
/// while the task has given it up ([`TaskHandle::defer_until`]).
pub(crate) type SlotCell = std::sync::Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>;

/// What a [`TaskHandle`] acts on: the attempt's slot, and how to tell the runner a slot is free.
#[derive(Clone)]
pub(crate) struct AttemptSlot {
    pub(crate) cell: SlotCell,
    pub(crate) freed: std::sync::Arc<dyn Fn() + Send + Sync>,
}

/// Execution control for the running task (upstream Cloacina's `TaskHandle`): a task that takes
/// `handle: &mut TaskHandle` as its second parameter can wait for an outside condition without
/// holding one of the runner's concurrency slots.
pub struct TaskHandle {
    slot: Option<AttemptSlot>,
    task_name: String,
}

impl TaskHandle {
    /// The handle of the calling task's attempt; outside the engine (a unit test calling the task
    /// function, `cloacina-testing`) a detached handle whose waits hold no slot.
    pub fn current() -> TaskHandle {
        let task_name = TaskAttempt::current().map(|a| a.task_name).unwrap_or_default();
        TaskHandle { slot: SLOT.try_with(Clone::clone).ok(), task_name }
    }

    /// True while this attempt holds a concurrency slot (false while it defers, and outside the
    /// engine).
    pub fn holds_slot(&self) -> bool {
        self.slot.as_ref().is_some_and(|s| s.cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some())
    }

    /// Gives the runner back this attempt's concurrency slot, calls `condition` every
    /// `poll_interval` until it returns `true`, then takes a slot again (waiting for one if all are
    /// busy) and returns. Another task can run in the slot meanwhile. The task keeps its claim
    /// (its lease is renewed as usual), so a crash while it waits is an ordinary lease expiry.
    pub async fn defer_until<F, Fut>(
        &mut self,
        condition: F,
        poll_interval: std::time::Duration,
    ) -> Result<(), TaskError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let semaphore = self.slot.as_ref().and_then(|s| {
            let permit = s.cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
            let semaphore = std::sync::Arc::clone(permit.semaphore());
            drop(permit);
            (s.freed)();
            Some(semaphore)
        });
        tracing::debug!(task = %self.task_name, "task deferred; its slot is free until the condition holds");
        while !condition().await {
            tokio::time::sleep(poll_interval).await;
        }
        if let (Some(semaphore), Some(slot)) = (semaphore, &self.slot) {
            let permit = semaphore.acquire_owned().await.map_err(|_| TaskError::Unknown {
                task_id: self.task_name.clone(),
                message: "the runner is stopping: the deferred task cannot take a slot again".to_owned(),
            })?;
            *slot.cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(permit);
        }
        tracing::debug!(task = %self.task_name, "deferred task resumes");
        Ok(())
    }
}

/// Runs `fut` (an attempt's code) with `attempt` as the current attempt and `slot` as the slot its
/// [`TaskHandle`] acts on.
pub(crate) async fn run_attempt<F: std::future::Future>(attempt: TaskAttempt, slot: AttemptSlot, fut: F) -> F::Output {
    CURRENT.scope(attempt, SLOT.scope(slot, fut)).await
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
}

/// Why a task did not succeed: upstream Cloacina's variants, plus [`TaskError::Fatal`]. Whether a
/// failed attempt is retried is decided by the task's [`RetryPolicy`](crate::retry::RetryPolicy)
/// (its attempts and [`RetryCondition`](crate::retry::RetryCondition)s; by default every error
/// retries), except that a `Fatal` error never is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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

/// The task whose code is running, for errors built inside it ("" outside task code).
fn current_task() -> String {
    TaskAttempt::current().map(|a| a.task_name).unwrap_or_default()
}

impl TaskError {
    /// A failure worth retrying: [`TaskError::ExecutionFailed`] for the running task, now.
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError::ExecutionFailed { message: message.into(), task_id: current_task(), timestamp: chrono::Utc::now() }
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

    /// True when a retry condition may retry it (everything but [`TaskError::Fatal`]).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TaskError::Fatal { .. })
    }
}

/// A context error inside a task (a missing key, a wrong type) becomes
/// [`TaskError::ContextError`] for the running task.
impl From<crate::context::Error> for TaskError {
    fn from(error: crate::context::Error) -> Self {
        TaskError::ContextError { task_id: current_task(), error }
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
