//! The executor: claims Ready tasks in batches, runs each with a timeout while the heartbeat renews
//! its lease, and records the outcome fenced on the claim. Also the public result types.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::dal::{pipeline_executions as pipelines, task_execution_metadata as outputs, task_executions as tasks};
use crate::database::{Database, UniversalTimestamp};
use crate::models::{PipelineExecutionId, TaskExecution, TaskExecutionId, TaskStatus};
use crate::runner::{Engine, PipelineInfo};
use crate::{Context, Error, TaskError};

/// A pipeline's status, as seen by callers of the runner.
pub use crate::models::PipelineStatus as WorkflowStatus;

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
    pub status: WorkflowStatus,
    /// The final context (empty unless the pipeline completed).
    pub final_context: Context<Value>,
    /// One entry per task, in creation order.
    pub task_results: Vec<TaskResult>,
    /// Why the pipeline failed, if it did.
    pub error_message: Option<String>,
    /// Time from creation to the terminal status.
    pub duration: Duration,
}

/// Running workflows and looking at their executions.
pub trait WorkflowExecutor {
    /// Starts `workflow` with `context` and returns a handle at once.
    fn execute_async(
        &self,
        workflow: &str,
        context: Context<Value>,
    ) -> impl std::future::Future<Output = Result<crate::runner::ExecutionHandle, Error>> + Send;

    /// Pipelines matching `filter`, newest first.
    fn list_executions(
        &self,
        filter: crate::dal::pipeline_executions::PipelineFilter,
    ) -> impl std::future::Future<Output = Result<Vec<crate::models::PipelineExecution>, Error>> + Send;

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

pub(crate) fn elapsed(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<Duration> {
    Some((to? - from?).to_std().unwrap_or_default())
}

/// One entry of [`ExecutionResult::task_results`].
pub(crate) fn task_result(t: &tasks::TaskOutcome) -> TaskResult {
    TaskResult {
        task_name: t.task_name.clone(),
        status: t.status,
        attempts: if t.started_at.is_some() { t.attempt } else { 0 },
        error_message: t.error_details.clone(),
        duration: elapsed(t.started_at, t.completed_at),
    }
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
    Ok(Some(ExecutionResult {
        execution_id: id,
        workflow_name: p.workflow_name,
        status: p.status,
        final_context: fin.map(Context::from_json).transpose()?.unwrap_or_default(),
        task_results: rows.iter().map(task_result).collect(),
        error_message: p.error_details,
        duration: elapsed(Some(p.created_at), p.completed_at).unwrap_or_default(),
    }))
}

/// Claims work while there are free slots; sleeps until woken or the poll interval passes.
pub(crate) async fn run_claim_loop(engine: Arc<Engine>) {
    let capacity = engine.config.max_concurrent_tasks.max(1);
    let slots = Arc::new(Semaphore::new(capacity));
    // While tasks run, claim only once a quarter of the slots is free: one claim statement then
    // serves several tasks instead of one per finished task. When idle, claim at once (latency).
    let refill_at = (capacity / 4).max(1);
    let mut shutdown = engine.shutdown.subscribe();
    loop {
        if engine.is_shutting_down() {
            return;
        }
        let free = slots.available_permits();
        let mut full_batch = false;
        if free >= refill_at || free == capacity {
            let want = u32::try_from(free).unwrap_or(u32::MAX).min(engine.config.claim_batch_size.max(1));
            let (runner, lease, versions) =
                (engine.runner_name.clone(), engine.config.lease_duration, engine.versions.clone());
            let claim =
                move |c: &mut _| tasks::claim_ready(c, &runner, &versions, want, lease, UniversalTimestamp::now());
            match engine.db.run(claim).await {
                Ok(claimed) => {
                    full_batch = claimed.len() == want as usize;
                    for task in claimed {
                        let Ok(permit) = slots.clone().acquire_owned().await else { return };
                        engine.held().insert(task.id, task.pipeline_execution_id);
                        let engine = engine.clone();
                        tokio::spawn(async move {
                            run_task(&engine, task).await;
                            drop(permit);
                            engine.work_available.notify_one();
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming tasks failed; retrying after the poll interval");
                }
            }
        }
        if full_batch && slots.available_permits() > 0 {
            continue;
        }
        tokio::select! {
            _ = engine.work_available.notified() => {}
            _ = tokio::time::sleep(engine.config.poll_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A successful attempt waiting to be recorded, and whom to tell whether it was (false: the
/// claim was lost; a dropped sender: the write failed, recovery will run the task again).
pub(crate) struct Completion {
    id: TaskExecutionId,
    output: Value,
    recorded: oneshot::Sender<bool>,
}

/// Most completions recorded in one statement.
const COMPLETION_BATCH: usize = 64;

/// Records successful attempts in batches, as a group commit: while one batch is being written,
/// completions that arrive queue up and go together in the next statement. A lone completion is
/// written at once, so batching adds no latency; under load, one statement and one commit serve
/// many tasks.
pub(crate) async fn run_completer(engine: Arc<Engine>, mut queue: mpsc::UnboundedReceiver<Completion>) {
    while let Some(first) = queue.recv().await {
        let mut waiting = vec![(first.id, first.recorded)];
        let mut outputs = vec![(first.id, first.output)];
        while outputs.len() < COMPLETION_BATCH {
            let Ok(next) = queue.try_recv() else { break };
            waiting.push((next.id, next.recorded));
            outputs.push((next.id, next.output));
        }
        let runner = engine.runner_name.clone();
        let written =
            engine.db.run(move |c| tasks::complete_all(c, &runner, &outputs, UniversalTimestamp::now())).await;
        match written {
            Ok(recorded) => {
                let recorded: HashSet<TaskExecutionId> = recorded.into_iter().collect();
                for (id, tell) in waiting {
                    let _ = tell.send(recorded.contains(&id));
                }
            }
            Err(e) => tracing::error!(
                tasks = waiting.len(),
                error = %e,
                "recording task completions failed; recovery will run those tasks again when their leases expire"
            ),
        }
    }
}

/// Renews the leases of every task this runner holds, in one statement per interval.
pub(crate) async fn run_heartbeat(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(engine.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let ids: Vec<_> = engine.held().keys().copied().collect();
        if ids.is_empty() {
            continue;
        }
        let (runner, lease) = (engine.runner_name.clone(), engine.config.lease_duration);
        let sent = ids.clone();
        let renewed = engine
            .db
            .run(move |c| {
                let now = UniversalTimestamp::now();
                tasks::renew_leases(c, &runner, &sent, now.plus(lease), now)
            })
            .await;
        match renewed {
            Ok(held) if held.len() < ids.len() => {
                tracing::warn!(
                    lost = ids.len() - held.len(),
                    "some claims were lost (recovered elsewhere); their results will be discarded"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
        }
    }
}

/// Runs one claimed task and records its outcome.
async fn run_task(engine: &Arc<Engine>, task: TaskExecution) {
    if let Err(e) = run_task_inner(engine, &task).await {
        tracing::error!(task = %task.task_name, id = %task.id, error = %e, "recording a task outcome failed; recovery will retry it when the lease expires");
    }
    engine.held().remove(&task.id);
}

async fn run_task_inner(engine: &Arc<Engine>, task: &TaskExecution) -> Result<(), Error> {
    let (id, pipeline, runner) = (task.id, task.pipeline_execution_id, engine.runner_name.clone());
    let info = engine.pipeline_info(pipeline).await?;
    let Some(workflow) = &info.workflow else {
        // The claim only takes versions this runner has, so this is a row edited by hand: give it
        // back without spending an attempt.
        engine.db.run(move |c| tasks::release(c, id, &runner, UniversalTimestamp::now())).await?;
        return Ok(());
    };
    let spec = workflow.spec().task(&task.task_name).cloned();
    let code = workflow.task_code(&task.task_name);
    let (Some(spec), Some(code)) = (spec, code) else {
        let msg = format!("task `{}` is not part of workflow `{}` in this runner", task.task_name, info.workflow_name);
        engine.db.run(move |c| tasks::fail(c, id, &runner, &msg, UniversalTimestamp::now())).await?;
        let last = engine.release_and_is_last(id);
        return crate::scheduler::after_outcome(engine, &info, &task.task_name, last).await;
    };
    let input = input_context(&engine.db, &info, &spec.dependencies).await?;
    let timeout = spec.timeout.unwrap_or(engine.config.default_task_timeout);
    // A task of its own, so a panic in user code fails this task instead of the runner.
    let attempt = tokio::spawn(async move { tokio::time::timeout(timeout, code.run(input)).await });
    let outcome = match attempt.await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(TaskError::Timeout(timeout)),
        Err(join) => Err(TaskError::fatal(format!("task panicked: {join}"))),
    };
    match outcome {
        Ok(output) => {
            let (recorded, heard) = oneshot::channel();
            // A send fails only when the runner is gone; the lease then runs out and recovery
            // runs the task again, as after a crash.
            let _ = engine.completions.send(Completion { id, output: output.to_json(), recorded });
            if heard.await == Ok(true) {
                let last = engine.release_and_is_last(id);
                crate::scheduler::after_outcome(engine, &info, &task.task_name, last).await?;
            }
        }
        Err(e) if e.is_retryable() && spec.retry.allows_retry_after(task.attempt) => {
            let delay = spec.retry.delay_after(task.attempt, jitter_sample());
            let msg = e.to_string();
            let won = engine
                .db
                .run(move |c| {
                    let now = UniversalTimestamp::now();
                    tasks::schedule_retry(c, id, &runner, &msg, now.plus(delay), now)
                })
                .await?;
            if won {
                // Wake the claim loop when the retry comes due, not at the next poll.
                let engine = engine.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    engine.work_available.notify_one();
                });
            }
        }
        Err(e) => {
            let msg = e.to_string();
            let won = engine.db.run(move |c| tasks::fail(c, id, &runner, &msg, UniversalTimestamp::now())).await?;
            if won {
                let last = engine.release_and_is_last(id);
                crate::scheduler::after_outcome(engine, &info, &task.task_name, last).await?;
            }
        }
    }
    Ok(())
}

/// Input of a task: the pipeline input, then each dependency's output in declared order (later wins).
pub(crate) async fn input_context(
    db: &Database,
    info: &PipelineInfo,
    dependencies: &[String],
) -> Result<Context<Value>, Error> {
    let mut ctx = info.input.clone();
    if dependencies.is_empty() {
        return Ok(ctx);
    }
    let (pipeline, deps) = (info.id, dependencies.to_vec());
    let outs = db.run(move |c| outputs::outputs_of(c, pipeline, &deps)).await?;
    for dep in dependencies {
        if let Some((_, out)) = outs.iter().find(|(name, _)| name == dep) {
            ctx.merge(&Context::from_json(out.clone())?);
        }
    }
    Ok(ctx)
}

/// A number in `[0, 1)` for retry jitter (from a fresh random UUID: no RNG dependency).
fn jitter_sample() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}
