//! Running workflows, as callers see it: the [`WorkflowExecutor`] trait (start, list, watch,
//! cancel, pause, resume), the [`ExecutionHandle`] of a started pipeline, and the result types.
//! [`DefaultRunner`](crate::runner::DefaultRunner) implements the trait; the services that do the
//! work live in `services/`.

use std::sync::Arc;

use serde_json::Value;

use crate::database::Database;
use crate::engine::{Ending, Engine};
use crate::models::{PipelineExecution, PipelineExecutionId};
use crate::ops::runs::RunFilter as PipelineFilter;
use crate::{Context, Error};

/// A pipeline's status, as seen by callers of the runner.
pub use crate::models::PipelineStatus as WorkflowStatus;
pub use crate::results::{ExecutionResult, TaskResult};
/// Upstream Cloacina's name for [`WorkflowExecutor`].
pub use WorkflowExecutor as PipelineExecutor;
/// Upstream Cloacina's name for [`ExecutionResult`].
pub type PipelineResult = ExecutionResult;
/// Upstream Cloacina's name for the error the executor's methods return: [`crate::Error`] here
/// (one error type for the whole library; its variants are this crate's, not upstream's).
pub type WorkflowExecutionError = crate::Error;

/// Told of every status change of a pipeline started with
/// [`WorkflowExecutor::execute_with_callback`] (upstream Cloacina's callback).
pub trait StatusCallback: Send + Sync {
    /// The pipeline's status changed to `status`.
    fn on_status_change(&self, status: WorkflowStatus);
}

/// Running workflows and looking at their executions.
pub trait WorkflowExecutor {
    /// Starts `workflow` with `context` and returns a handle at once.
    fn execute_async(
        &self,
        workflow: &str,
        context: Context<Value>,
    ) -> impl std::future::Future<Output = Result<ExecutionHandle, Error>> + Send;

    /// Pipelines matching `filter`, newest first.
    fn list_executions(
        &self,
        filter: PipelineFilter,
    ) -> impl std::future::Future<Output = Result<Vec<PipelineExecution>, Error>> + Send;

    /// Starts `workflow` with `context` and waits for a terminal state.
    fn execute(
        &self,
        workflow: &str,
        context: Context<Value>,
    ) -> impl std::future::Future<Output = Result<ExecutionResult, Error>> + Send;

    /// The current status of a pipeline.
    fn get_execution_status(
        &self,
        id: PipelineExecutionId,
    ) -> impl std::future::Future<Output = Result<WorkflowStatus, Error>> + Send;

    /// Cancels a pipeline; returns whether this call cancelled it.
    fn cancel(&self, id: PipelineExecutionId) -> impl std::future::Future<Output = Result<bool, Error>> + Send;

    /// Pauses a pipeline: running tasks finish, no further task is claimed until it is resumed.
    /// Returns whether this call paused it.
    fn pause(&self, id: PipelineExecutionId) -> impl std::future::Future<Output = Result<bool, Error>> + Send;

    /// Resumes a paused pipeline; returns whether this call resumed it.
    fn resume(&self, id: PipelineExecutionId) -> impl std::future::Future<Output = Result<bool, Error>> + Send;

    /// A handle on pipeline `id`, wherever it was started.
    fn attach(
        &self,
        id: PipelineExecutionId,
    ) -> impl std::future::Future<Output = Result<ExecutionHandle, Error>> + Send;

    /// Cancels pipeline `id` (upstream's name): `Ok` whether this call or an earlier one ended it.
    fn cancel_execution(&self, id: PipelineExecutionId) -> impl std::future::Future<Output = Result<(), Error>> + Send
    where
        Self: Sync,
    {
        async move { self.cancel(id).await.map(drop) }
    }

    /// Pauses pipeline `id` (upstream's name); `reason` goes to the log.
    fn pause_execution(
        &self,
        id: PipelineExecutionId,
        reason: Option<&str>,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send
    where
        Self: Sync,
    {
        let reason = reason.map(str::to_owned);
        async move {
            if self.pause(id).await? {
                tracing::info!(pipeline = %id, reason = reason.as_deref().unwrap_or(""), "pipeline paused");
            }
            Ok(())
        }
    }

    /// Resumes pipeline `id` (upstream's name).
    fn resume_execution(&self, id: PipelineExecutionId) -> impl std::future::Future<Output = Result<(), Error>> + Send
    where
        Self: Sync,
    {
        async move { self.resume(id).await.map(drop) }
    }

    /// The result of pipeline `id` as it stands: final once it has ended; while it runs, its
    /// status and the tasks so far (upstream's `get_execution_result`).
    fn get_execution_result(
        &self,
        id: PipelineExecutionId,
    ) -> impl std::future::Future<Output = Result<ExecutionResult, Error>> + Send
    where
        Self: Sync,
    {
        async move { self.attach(id).await?.current_result().await }
    }

    /// Runs `workflow` like [`execute`](Self::execute), telling `callback` of each status the
    /// pipeline reaches (as observed: a status held shorter than the poll interval may be missed,
    /// the terminal one never is).
    fn execute_with_callback(
        &self,
        workflow: &str,
        context: Context<Value>,
        callback: Box<dyn StatusCallback>,
    ) -> impl std::future::Future<Output = Result<ExecutionResult, Error>> + Send
    where
        Self: Sync,
    {
        async move {
            let handle = self.execute_async(workflow, context).await?;
            let mut last = None;
            loop {
                let status = handle.status().await?;
                if last != Some(status) {
                    callback.on_status_change(status);
                    last = Some(status);
                }
                if status.is_terminal() {
                    return handle.wait_for_completion().await;
                }
                let wait = handle.engine.settings.config.poll_interval;
                let _ = tokio::time::timeout(wait, handle.engine.runs.waiter(handle.id).changed()).await;
            }
        }
    }
}

/// A started pipeline.
pub struct ExecutionHandle {
    engine: Arc<Engine>,
    id: PipelineExecutionId,
}

impl ExecutionHandle {
    pub(crate) fn new(engine: Arc<Engine>, id: PipelineExecutionId) -> Self {
        Self { engine, id }
    }

    /// The pipeline's id.
    pub fn execution_id(&self) -> PipelineExecutionId {
        self.id
    }

    /// The pipeline's current status.
    pub async fn status(&self) -> Result<WorkflowStatus, Error> {
        let id = self.id;
        self.engine
            .store
            .db
            .run_with(move |c| crate::ops::runs::status(c, id))
            .await?
            .ok_or(Error::ExecutionNotFound(id))
    }

    /// [`status`](Self::status), by upstream's name.
    pub async fn get_status(&self) -> Result<WorkflowStatus, Error> {
        self.status().await
    }

    /// [`wait_for_completion`](Self::wait_for_completion) for at most `timeout` (`None`: no
    /// limit); [`Error::Timeout`] when it runs out (the pipeline goes on).
    pub async fn wait_for_completion_with_timeout(
        self,
        timeout: Option<std::time::Duration>,
    ) -> Result<ExecutionResult, Error> {
        let id = self.id;
        match timeout {
            None => self.wait_for_completion().await,
            Some(waited) => tokio::time::timeout(waited, self.wait_for_completion())
                .await
                .unwrap_or(Err(Error::Timeout { id, waited })),
        }
    }

    /// The result as it stands (final once the pipeline ended).
    pub(crate) async fn current_result(&self) -> Result<ExecutionResult, Error> {
        let id = self.id;
        self.engine
            .store
            .db
            .run_with(move |c| crate::ops::runs::result(c, id))
            .await?
            .ok_or(Error::ExecutionNotFound(id))
    }

    /// Cancels the pipeline: tasks not yet started never run. Returns whether this call cancelled it.
    pub async fn cancel(&self) -> Result<bool, Error> {
        cancel(&self.engine, self.id).await
    }

    /// Waits for a terminal status and returns the result. When this process ends the pipeline
    /// the result is handed over at once; the end of one ended by another process is found by
    /// the runner's end watch (one query per poll interval for all waiters), or, once the runner
    /// has shut down, by polling.
    pub async fn wait_for_completion(self) -> Result<ExecutionResult, Error> {
        let id = self.id;
        let mut stopped = self.engine.shutdown.stop_services.subscribe();
        loop {
            // Subscribe before looking, so an end between the look and the wait is not missed.
            let mut ending = self.engine.runs.waiter(id);
            if let Some(result) = result_if_terminal(&self.engine.store.db, id).await? {
                drop(ending);
                self.engine.runs.forget_waiter(id);
                return Ok(result);
            }
            let watched = !*stopped.borrow();
            tokio::select! {
                heard = ending.wait_for(|e| matches!(e, Ending::Ended(_))) => {
                    if let Ok(e) = heard {
                        if let Ending::Ended(Some(result)) = &*e {
                            return Ok(ExecutionResult::clone(result));
                        }
                    }
                }
                _ = stopped.wait_for(|s| *s), if watched => {}
                _ = tokio::time::sleep(self.engine.settings.config.poll_interval), if !watched => {}
            }
        }
    }
}

/// Cancels pipeline `id` and tells its waiters in this process.
pub(crate) async fn cancel(engine: &Arc<Engine>, id: PipelineExecutionId) -> Result<bool, Error> {
    let now = engine.clock.now();
    let cancelled = engine.store.db.run_with(move |c| crate::ops::runs::cancel(c, id, now)).await?.is_ok();
    if cancelled {
        tracing::info!(pipeline = %id, "pipeline cancelled");
        engine.runs.pipeline_finished(id, None);
    }
    Ok(cancelled)
}

/// The full result of pipeline `id` if it is terminal, `None` while it is not.
pub(crate) async fn result_if_terminal(
    db: &Database,
    id: PipelineExecutionId,
) -> Result<Option<ExecutionResult>, Error> {
    db.run_with(move |c| crate::ops::runs::final_result(c, id)).await
}
