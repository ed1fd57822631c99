//! One attempt of one claimed task: read what the task needs, run its code with a timeout in a
//! Tokio task of its own (a panic fails only that attempt), and report the outcome, with the
//! attempt's slot, to the completer, which records it and forgets the claim.
//!
//! At the shutdown deadline a running attempt is cancelled first and only then given back, so the
//! same attempt never runs in two places. Task code that does not yield cannot be cancelled: its
//! claim is kept (not released), the heartbeat stops with the runner, and recovery hands the task
//! on once the lease lapses.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use super::completer::{AfterRecorded, Completer, Outcome, Report};
use crate::clock::Clock;
use crate::dal::pipeline_executions as pipelines;
use crate::engine::{
    input_context, stamp, Claims, Persistence, PipelineInfo, Runs, Settings, Shutdown, Signals, Store,
};
use crate::models::{PipelineStatus, TaskExecution};
use crate::task::{run_attempt, AttemptSlot, SlotCell, TaskAttempt};
use crate::telemetry::{self, AttemptEnd};
use crate::{Context, TaskError};

/// How long a cancelled attempt gets to stop before its claim is left for recovery.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// What an attempt touches.
pub(crate) struct AttemptParts {
    store: Arc<Store>,
    runs: Arc<Runs>,
    claims: Arc<Claims>,
    signals: Arc<Signals>,
    settings: Arc<Settings>,
    shutdown: Arc<Shutdown>,
    clock: Arc<dyn Clock>,
}

impl AttemptParts {
    /// The parts of `engine` it uses.
    pub(crate) fn of(engine: &crate::engine::Engine) -> Self {
        Self {
            store: engine.store.clone(),
            runs: engine.runs.clone(),
            claims: engine.claims.clone(),
            signals: engine.signals.clone(),
            settings: engine.settings.clone(),
            shutdown: engine.shutdown.clone(),
            clock: engine.clock.clone(),
        }
    }
}

/// Runs `task`, claimed by this runner, and reports its outcome to the completer together with
/// its slot (`slot`), which the completer reuses for the next task or frees. `input` is the
/// task's input when the caller has it (otherwise it is read).
pub(crate) async fn run(
    parts: Arc<AttemptParts>,
    completer: Completer,
    task: TaskExecution,
    slot: OwnedSemaphorePermit,
    input: Option<Context<Value>>,
) {
    // The slot stays with the attempt, except while its task defers (`TaskHandle::defer_until`).
    let cell: SlotCell = Arc::new(std::sync::Mutex::new(Some(slot)));
    let freed: Arc<dyn Fn() + Send + Sync> = {
        let parts = parts.clone();
        Arc::new(move || parts.signals.work_available.notify_one())
    };
    let held = AttemptSlot { cell: cell.clone(), freed };
    let (info, outcome, after_recorded) = match prepare_and_run(&parts, &task, input, held).await {
        Ran::Outcome(info, outcome) => (info, outcome, None),
        Ran::Hooked(info, outcome, hook) => (info, outcome, Some(hook)),
        Ran::KeepClaim => {
            // The code did not stop when cancelled: leave the claim to lapse (recovery takes it).
            parts.claims.release(task.id);
            return;
        }
    };
    parts.claims.mark_recording(task.id);
    let report = Report {
        task: task.id,
        task_name: task.task_name.clone(),
        attempt: task.attempt,
        pipeline: task.pipeline_execution_id,
        info,
        outcome,
        // `None` only when the code ended while deferring (it was cancelled mid-wait).
        slot: cell.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(),
        after_recorded,
    };
    if !completer.send(report) {
        // The completer has stopped (the runner is going away): the claim lapses.
        parts.claims.release(task.id);
    }
}

enum Ran {
    /// Report this outcome (with the pipeline's facts when they could be read).
    Outcome(Option<Arc<PipelineInfo>>, Outcome),
    /// The same, and run the task's hook once the outcome is recorded.
    Hooked(Option<Arc<PipelineInfo>>, Outcome, AfterRecorded),
    /// Report nothing and keep the claim until it lapses.
    KeepClaim,
}

async fn prepare_and_run(
    parts: &Arc<AttemptParts>,
    task: &TaskExecution,
    input: Option<Context<Value>>,
    slot: AttemptSlot,
) -> Ran {
    let id = task.pipeline_execution_id;
    let loaded = match parts.runs.cached_pipeline(id) {
        Some(info) => Ok(Some(info)),
        None => {
            let e = parts.clone();
            parts
                .store
                .persist("read a pipeline", Persistence::BRIEF, move |c, _| {
                    let info = e.runs.pipeline_info_in(c, id)?;
                    // The first attempt this runner makes in a pipeline moves it from Pending to
                    // Running (conditionally: whoever comes first).
                    let _ = pipelines::transition(
                        c,
                        id,
                        PipelineStatus::Pending,
                        PipelineStatus::Running,
                        None,
                        stamp(&*e.clock),
                    )?;
                    Ok(info)
                })
                .await
        }
    };
    let info = match loaded {
        Ok(Some(info)) => info,
        Ok(None) => return Ran::Outcome(None, Outcome::Released("its pipeline is gone".into())),
        Err(e) => {
            tracing::warn!(task = %task.task_name, error = %e, "cannot read the task's pipeline; giving the task back");
            return Ran::Outcome(None, Outcome::Released(format!("the runner could not read its pipeline: {e}")));
        }
    };
    let Some(workflow) = info.workflow.clone() else {
        // The claim takes only versions this runner has, so this is a row edited by hand.
        return Ran::Outcome(Some(info), Outcome::Released("this runner lacks the pipeline's workflow version".into()));
    };
    let (Some(spec), Some(code)) =
        (workflow.spec().task(&task.task_name).cloned(), workflow.task_code(&task.task_name))
    else {
        let msg = format!("task `{}` is not part of workflow `{}` in this runner", task.task_name, info.workflow_name);
        return Ran::Outcome(Some(info), Outcome::Failed(msg));
    };
    let (i, deps) = (info.clone(), spec.dependencies.clone());
    let read = async {
        if let Some(input) = input {
            return Ok(input);
        }
        if deps.is_empty() {
            return Ok(i.input.clone()); // a root's input is the pipeline's: nothing to read
        }
        parts.store.persist("read a task's input", Persistence::BRIEF, move |c, _| input_context(c, &i, &deps)).await
    };
    let input = match read.await {
        Ok(input) => input,
        Err(err) => {
            tracing::warn!(task = %task.task_name, error = %err, "cannot read the task's input; giving the task back");
            return Ran::Outcome(Some(info), Outcome::Released(format!("the runner could not read its input: {err}")));
        }
    };
    let timeout = spec.timeout.unwrap_or(parts.settings.config.default_task_timeout);
    let attempt = TaskAttempt {
        pipeline_execution_id: task.pipeline_execution_id,
        task_execution_id: task.id,
        workflow_name: info.workflow_name.clone(),
        task_name: task.task_name.clone(),
        attempt: task.attempt,
        max_attempts: task.max_attempts,
    };
    let hooks = workflow.task_hooks(&task.task_name).cloned().unwrap_or_default();
    // The hook gets the context the task was given: kept only when there is a hook to get it.
    let failure_input = hooks.on_failure.as_ref().map(|_| input.clone());
    let pipeline = task.pipeline_execution_id;
    tracing::debug!(%pipeline, task = %task.task_name, id = %task.id, attempt = task.attempt, "task started");
    telemetry::task_started(&info.workflow_name);
    let began = std::time::Instant::now();
    let run = async move { tokio::time::timeout(timeout, code.run(input)).await };
    // A span per attempt inside a span per pipeline: what the task's code logs carries the ids.
    let pipeline_span = tracing::info_span!("pipeline", pipeline = %pipeline, workflow = %info.workflow_name);
    let span = tracing::info_span!(
        parent: &pipeline_span, "task", task = %task.task_name, id = %task.id, attempt = task.attempt
    );
    let mut handle = tokio::spawn(tracing::Instrument::instrument(run_attempt(attempt, slot, run), span));
    let mut cancel = parts.shutdown.cancel_attempts.subscribe();
    let finished = tokio::select! {
        joined = &mut handle => Some(joined),
        _ = cancel.wait_for(|c| *c) => None,
    };
    let joined = match finished {
        Some(joined) => joined,
        None => {
            handle.abort();
            match tokio::time::timeout(CANCEL_GRACE, &mut handle).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!(task = %task.task_name, id = %task.id, "task code did not stop when cancelled; its claim is left to lapse");
                    return Ran::KeepClaim;
                }
            }
        }
    };
    let result = match joined {
        Ok(Ok(result)) => result,
        Ok(Err(_elapsed)) => {
            Err(TaskError::Timeout { task_id: task.task_name.clone(), timeout_seconds: timeout.as_secs() })
        }
        Err(j) if j.is_cancelled() => {
            return Ran::Outcome(Some(info), Outcome::Released("cancelled at the runner's shutdown deadline".into()));
        }
        Err(j) => Err(TaskError::fatal(format!("task panicked: {j}"))),
    };
    // An output that cannot be stored fails the attempt here, naming the place, rather than
    // failing every try to record it.
    let result = result
        .and_then(|output| match crate::input::context("output", &output) {
            Ok(()) => Ok(output),
            Err(e) => Err(TaskError::fatal(format!("the task's output cannot be stored: {e}"))),
        })
        .map_err(|e| e.for_task(&task.task_name));
    let name = task.task_name.clone();
    let took = began.elapsed();
    if result.is_ok() {
        tracing::debug!(%pipeline, task = %task.task_name, id = %task.id, attempt = task.attempt, "task completed");
    }
    let end = match &result {
        Ok(_) => AttemptEnd::Completed,
        Err(e) if spec.retry.should_retry(e, task.attempt) => AttemptEnd::Retried,
        Err(_) => AttemptEnd::Failed,
    };
    telemetry::task_ended(&info.workflow_name, end, took);
    let outcome = match result {
        Ok(output) => match hooks.on_success {
            Some(hook) => {
                let value = output.to_value();
                let call: AfterRecorded = Box::new(move || hook(name, output));
                return Ran::Hooked(Some(info), Outcome::Completed(value), call);
            }
            None => Outcome::Completed(output.to_value()),
        },
        Err(e) if spec.retry.should_retry(&e, task.attempt) => {
            let delay = spec.retry.delay_after(task.attempt, fastrand::f64());
            tracing::info!(
                %pipeline, task = %task.task_name, id = %task.id, attempt = task.attempt, ?delay, error = %e,
                "task failed; retry scheduled"
            );
            Outcome::Retry { error: crate::input::storable(&e.to_string()).into_owned(), delay }
        }
        Err(e) => {
            tracing::warn!(%pipeline, task = %task.task_name, id = %task.id, attempt = task.attempt, error = %e, "task failed");
            let outcome = Outcome::Failed(crate::input::storable(&e.to_string()).into_owned());
            if let (Some(hook), Some(input)) = (hooks.on_failure, failure_input) {
                let call: AfterRecorded = Box::new(move || hook(name, e, input));
                return Ran::Hooked(Some(info), outcome, call);
            }
            outcome
        }
    };
    Ran::Outcome(Some(info), outcome)
}
