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

use super::attempt::{self, AttemptParts};
use super::completer::{Completer, Handoff};
use crate::clock::Clock;
use crate::dal::task_executions as tasks;
use crate::database::UniversalTimestamp;
use crate::engine::{stamp, Catalog, Claims, Settings, Shutdown, Signals, Store};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::TaskExecution;
use crate::telemetry;
use crate::Context;

/// The runner's slots: `max_concurrent_tasks` permits shared by the claim loop and the completer.
pub(crate) fn slots(settings: &Settings) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(settings.config.max_concurrent_tasks))
}

/// What the claim loop touches; `attempts` is what each attempt it starts gets.
pub(crate) struct Claimer {
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    claims: Arc<Claims>,
    signals: Arc<Signals>,
    settings: Arc<Settings>,
    shutdown: Arc<Shutdown>,
    clock: Arc<dyn Clock>,
    attempts: Arc<AttemptParts>,
}

impl Claimer {
    /// The parts of `engine` it uses.
    pub(crate) fn of(engine: &crate::engine::Engine) -> Self {
        Self {
            store: engine.store.clone(),
            catalog: engine.catalog.clone(),
            claims: engine.claims.clone(),
            signals: engine.signals.clone(),
            settings: engine.settings.clone(),
            shutdown: engine.shutdown.clone(),
            clock: engine.clock.clone(),
            attempts: Arc::new(AttemptParts::of(engine)),
        }
    }
}

/// The service loop.
pub(crate) async fn run(
    claimer: Arc<Claimer>,
    completer: Completer,
    slots: Arc<Semaphore>,
    mut handoffs: mpsc::UnboundedReceiver<Handoff>,
) {
    let capacity = claimer.settings.config.max_concurrent_tasks;
    // While tasks run, claim only once a quarter of the slots is free: one claim statement then
    // serves several tasks instead of one per finished task. When idle, claim at once (latency).
    let refill_at = (capacity / 4).max(1);
    let mut stop = claimer.shutdown.stop_claiming.subscribe();
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
            spawn(&claimer, &completer, &mut attempts, h.task, h.slot, h.input);
        }
        let mut started = Vec::new();
        if let Some(at) = unanswered.first().copied() {
            let runner = claimer.settings.runner_name.clone();
            match claimer.store.db.run(move |c| tasks::claimed_at(c, &runner, at)).await {
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
            let want = u32::try_from(free).unwrap_or(u32::MAX).min(claimer.settings.config.claim_batch_size);
            let now = stamp(&*claimer.clock);
            let e = claimer.clone();
            let began = std::time::Instant::now();
            let claimed = claimer
                .store
                .db
                .run_with(move |c| {
                    e.store.faults.check(FaultPoint::Claim, FaultTiming::Before)?;
                    let lease = e.settings.config.lease_duration;
                    let claimed =
                        tasks::claim_ready(c, &e.settings.runner_name, &e.catalog.now().versions, want, lease, now)?;
                    e.store.faults.check(FaultPoint::Claim, FaultTiming::AfterCommit)?;
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
            start(&claimer, &completer, &mut attempts, task, slot);
        }
        if full_batch && slots.available_permits() > 0 {
            continue;
        }
        look = tokio::select! {
            _ = claimer.signals.work_available.notified() => true,
            _ = tokio::time::sleep(claimer.settings.config.poll_interval) => true,
            _ = stop.wait_for(|s| *s) => true,
            Some(h) = handoffs.recv() => {
                spawn(&claimer, &completer, &mut attempts, h.task, h.slot, h.input);
                !unanswered.is_empty()
            }
        };
    }
    // Shutdown: running attempts finish (or are cancelled at the deadline by the runner), their
    // outcomes are recorded, and tasks the completer claimed before it saw the shutdown run too.
    loop {
        while let Ok(h) = handoffs.try_recv() {
            spawn(&claimer, &completer, &mut attempts, h.task, h.slot, h.input);
        }
        while attempts.try_join_next().is_some() {}
        if attempts.is_empty() && claimer.claims.holds_nothing() {
            return;
        }
        let recorded = claimer.signals.recorded.notified();
        tokio::select! {
            _ = attempts.join_next(), if !attempts.is_empty() => {}
            Some(h) = handoffs.recv() => spawn(&claimer, &completer, &mut attempts, h.task, h.slot, h.input),
            _ = recorded => {}
            // A claim left to lapse (code that ignored cancellation) is forgotten without a batch.
            _ = tokio::time::sleep(claimer.settings.config.poll_interval) => {}
        }
    }
}

fn start(
    claimer: &Arc<Claimer>,
    completer: &Completer,
    attempts: &mut JoinSet<()>,
    task: TaskExecution,
    slot: OwnedSemaphorePermit,
) {
    claimer.claims.hold(task.id, task.pipeline_execution_id);
    spawn(claimer, completer, attempts, task, slot, None);
}

/// Starts the attempt of a task already held.
fn spawn(
    claimer: &Arc<Claimer>,
    completer: &Completer,
    attempts: &mut JoinSet<()>,
    task: TaskExecution,
    slot: OwnedSemaphorePermit,
    input: Option<Context<Value>>,
) {
    attempts.spawn(attempt::run(claimer.attempts.clone(), completer.clone(), task, slot, input));
}
