//! The claim loop: claims Ready tasks into free slots, one statement per batch, and starts an
//! attempt for each. Sleeps until woken (work created or finished in this process, a retry coming
//! due) or the poll interval passes (work created elsewhere).
//!
//! A claim statement whose answer is lost (the connection dropped after the commit) has still
//! taken its tasks under this runner's name. They were stamped with the claim's time, so the loop
//! looks them up and runs them instead of leaving them to lapse (which would charge each an
//! attempt it never made).
//!
//! The completer claims too: the slots of the attempts whose outcomes it records go to tasks it
//! claims in the same transaction, and come back here as [`Handoff`]s to start.
//!
//! At shutdown the loop stops claiming, then waits until its attempts have ended and every
//! outcome is recorded (starting any task the completer handed over meanwhile); it returns then.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::attempt;
use super::completer::{Completer, Handoff};
use crate::dal::task_executions as tasks;
use crate::database::UniversalTimestamp;
use crate::engine::Engine;
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::TaskExecution;
use crate::telemetry;
use crate::Context;

/// The runner's slots: `max_concurrent_tasks` permits shared by the claim loop and the completer.
pub(crate) fn slots(engine: &Engine) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(engine.config.max_concurrent_tasks))
}

/// The service loop.
pub(crate) async fn run(
    engine: Arc<Engine>,
    completer: Completer,
    slots: Arc<Semaphore>,
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
) {
    let capacity = engine.config.max_concurrent_tasks;
    // While tasks run, claim only once a quarter of the slots is free: one claim statement then
    // serves several tasks instead of one per finished task. When idle, claim at once (latency).
    let refill_at = (capacity / 4).max(1);
    let mut stop = engine.stop_claiming.subscribe();
    let mut attempts = JoinSet::new();
    // Claims whose answer was lost, by their time stamp, until their tasks are found.
    let mut unanswered: Vec<UniversalTimestamp> = Vec::new();
    // Whether to look for work now: at start, when woken, after the poll interval. Not after a
    // hand-over: the completer just claimed what it could see.
    let mut look = true;
    loop {
        if *stop.borrow() {
            break;
        }
        while attempts.try_join_next().is_some() {}
        while let Ok(h) = handoffs.try_recv() {
            spawn(&engine, &completer, &mut attempts, h.task, h.slot, h.input);
        }
        let mut started = Vec::new();
        if let Some(at) = unanswered.first().copied() {
            let runner = engine.runner_name.clone();
            match engine.db.run(move |c| tasks::claimed_at(c, &runner, at)).await {
                Ok(found) => {
                    unanswered.remove(0);
                    if !found.is_empty() {
                        tracing::info!(
                            tasks = found.len(),
                            "found the tasks of a claim whose answer was lost; running them"
                        );
                    }
                    started.extend(found);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "looking up the tasks of an unanswered claim failed; trying again")
                }
            }
        }
        let free = slots.available_permits();
        let mut full_batch = false;
        if look && (free >= refill_at || free == capacity) {
            let want = u32::try_from(free).unwrap_or(u32::MAX).min(engine.config.claim_batch_size);
            let now = engine.now();
            let e = engine.clone();
            let began = std::time::Instant::now();
            let claimed = engine
                .db
                .run_with(move |c| {
                    e.faults.check(FaultPoint::Claim, FaultTiming::Before)?;
                    let lease = e.config.lease_duration;
                    let claimed = tasks::claim_ready(c, &e.runner_name, &e.versions, want, lease, now)?;
                    e.faults.check(FaultPoint::Claim, FaultTiming::AfterCommit)?;
                    Ok::<_, crate::Error>(claimed)
                })
                .await;
            match claimed {
                Ok(claimed) => {
                    telemetry::claimed(claimed.len(), began.elapsed());
                    full_batch = claimed.len() == want as usize;
                    started.extend(claimed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming tasks failed; looking for what it may have taken, then trying again");
                    unanswered.push(now);
                }
            }
        }
        for task in started {
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            start(&engine, &completer, &mut attempts, task, slot);
        }
        if full_batch && slots.available_permits() > 0 {
            continue;
        }
        look = tokio::select! {
            _ = engine.work_available.notified() => true,
            _ = tokio::time::sleep(engine.config.poll_interval) => true,
            _ = stop.wait_for(|s| *s) => true,
            Some(h) = handoffs.recv() => {
                spawn(&engine, &completer, &mut attempts, h.task, h.slot, h.input);
                !unanswered.is_empty()
            }
        };
    }
    // Shutdown: running attempts finish (or are cancelled at the deadline by the runner), their
    // outcomes are recorded, and tasks the completer claimed before it saw the shutdown run too.
    loop {
        while let Ok(h) = handoffs.try_recv() {
            spawn(&engine, &completer, &mut attempts, h.task, h.slot, h.input);
        }
        while attempts.try_join_next().is_some() {}
        if attempts.is_empty() && engine.holds_nothing() {
            return;
        }
        let recorded = engine.recorded.notified();
        tokio::select! {
            _ = attempts.join_next(), if !attempts.is_empty() => {}
            Some(h) = handoffs.recv() => spawn(&engine, &completer, &mut attempts, h.task, h.slot, h.input),
            _ = recorded => {}
            // A claim left to lapse (code that ignored cancellation) is forgotten without a batch.
            _ = tokio::time::sleep(engine.config.poll_interval) => {}
        }
    }
}

fn start(
    engine: &Arc<Engine>,
    completer: &Completer,
    attempts: &mut JoinSet<()>,
    task: TaskExecution,
    slot: OwnedSemaphorePermit,
) {
    engine.hold(task.id, task.pipeline_execution_id);
    spawn(engine, completer, attempts, task, slot, None);
}

/// Starts the attempt of a task already held.
fn spawn(
    engine: &Arc<Engine>,
    completer: &Completer,
    attempts: &mut JoinSet<()>,
    task: TaskExecution,
    slot: OwnedSemaphorePermit,
    input: Option<Context<Value>>,
) {
    attempts.spawn(attempt::run(engine.clone(), completer.clone(), task, slot, input));
}
