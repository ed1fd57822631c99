//! What a task's code can learn about the attempt it runs in ([`TaskAttempt::current`]) and do
//! with it ([`TaskHandle::defer_until`]); the authoring model of a task (its error type, its
//! trigger rules) is `cloacina-workflow`'s, re-exported here.

pub use cloacina_workflow::task::*;

use crate::models::{PipelineExecutionId, TaskExecutionId};

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
