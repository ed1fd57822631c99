//! Running workflows, as callers see it: the [`WorkflowExecutor`] trait (start, list, watch,
//! cancel, pause, resume), the [`ExecutionHandle`] of a started pipeline, and the result types.
//! [`DefaultRunner`](crate::runner::DefaultRunner) implements the trait; the services that do the
//! work live in `services/`.

use std::sync::Arc;

use serde_json::Value;

use crate::dal::pipeline_executions::{self as pipelines, PipelineFilter};
use crate::dal::task_executions as tasks;
use crate::database::Database;
use crate::engine::{Ending, Engine};
use crate::models::{PipelineExecution, PipelineExecutionId};
use crate::{Context, Error};

/// A pipeline's status, as seen by callers of the runner.
pub use crate::models::PipelineStatus as WorkflowStatus;
pub use crate::results::{ExecutionResult, TaskResult};

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
        let p = self.engine.db.run(move |c| pipelines::get(c, id)).await?;
        Ok(p.ok_or(Error::ExecutionNotFound(id))?.status)
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
        let mut stopped = self.engine.stop_services.subscribe();
        loop {
            // Subscribe before looking, so an end between the look and the wait is not missed.
            let mut ending = self.engine.waiter(id);
            if let Some(result) = result_if_terminal(&self.engine.db, id).await? {
                drop(ending);
                self.engine.forget_waiter(id);
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
                _ = tokio::time::sleep(self.engine.config.poll_interval), if !watched => {}
            }
        }
    }
}

/// Cancels pipeline `id` and tells its waiters in this process.
pub(crate) async fn cancel(engine: &Arc<Engine>, id: PipelineExecutionId) -> Result<bool, Error> {
    let now = engine.now();
    let cancelled = engine.db.run(move |c| pipelines::cancel(c, id, now)).await?;
    if cancelled {
        tracing::info!(pipeline = %id, "pipeline cancelled");
        engine.pipeline_finished(id, None);
    }
    Ok(cancelled)
}

/// The full result of pipeline `id` if it is terminal, `None` while it is not.
pub(crate) async fn result_if_terminal(
    db: &Database,
    id: PipelineExecutionId,
) -> Result<Option<ExecutionResult>, Error> {
    let found = db
        .run(move |c| {
            let Some(p) = pipelines::get(c, id)? else { return Ok(None) };
            if !p.status.is_terminal() {
                return Ok(Some((p, Vec::new(), None)));
            }
            let rows = tasks::outcomes(c, id)?;
            let fin = match p.final_context_id {
                Some(ctx) => crate::dal::contexts::get(c, ctx)?,
                None => None,
            };
            Ok(Some((p, rows, fin)))
        })
        .await?;
    let (p, rows, fin) = found.ok_or(Error::ExecutionNotFound(id))?;
    if !p.status.is_terminal() {
        return Ok(None);
    }
    Ok(Some(crate::results::execution_result(p, &rows, fin)?))
}
