//! The completer: records attempt outcomes in batches (a group commit), each batch in one
//! transaction together with everything that follows from it, so a crash or a failed statement
//! can delay an outcome's consequences but never lose them.
//!
//! One transaction per batch:
//! 1. lock the batch's pipelines (ascending ids, the recorder's lock order: no other transaction
//!    that waits for these tasks' rows can run meanwhile);
//! 2. record each outcome fenced on its claim (Completed with its output, Ready again for a
//!    retry, Failed, or released);
//! 3. let the scheduler decide the dependents of the tasks that finished;
//! 4. fill the slots the batch frees (its attempts hand their slots over with their reports):
//!    first with the dependents step 3 finds runnable, claimed directly, then with other Ready
//!    tasks; they start without another transaction, those whose dependencies all finished in
//!    the batch with their input built from the batch's outputs;
//! 5. announce Ready work left for other runners ([`Store::announce_work`](crate::engine::Store::announce_work));
//! 6. end the pipelines with nothing left (not those this runner still holds tasks of), the final
//!    context taking the batch's outputs from memory.
//!
//! After the commit, the task hooks (`on_success`, and `on_failure` after the last attempt) of
//! the outcomes the batch recorded run, each in a Tokio task of its own.
//!
//! A lone outcome is written at once; under load, outcomes that arrive while a batch is written go
//! together in the next. The pipeline lock is skipped when nothing can follow from the batch (only
//! completions of tasks without dependents, in pipelines this runner holds other tasks of).
//!
//! A failed batch is tried again (see [`Store::persist`](crate::engine::Store::persist)): the leases stay renewed meanwhile.
//! If it keeps failing for a reason that is not transient, its outcomes are recorded one by one,
//! so one bad outcome cannot hold the others back; one that still fails is given up, and its
//! task runs again once the lease lapses.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::clock::{sleep_until, Clock};
use crate::dal::pipeline_executions as pipelines;
use crate::dal::task_executions as tasks;
use crate::database::{write_transaction, AnyConnection, UniversalTimestamp};
use crate::engine::{
    merge_outputs, stamp, Catalog, Claims, Persistence, PipelineInfo, Runs, Settings, Shutdown, Signals, Store,
};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::{PipelineExecutionId, TaskExecution, TaskExecutionId, TaskStatus};
use crate::results::ExecutionResult;
use crate::scheduler;
use crate::telemetry;
use crate::{Context, Error};

/// Most outcomes recorded in one transaction.
const BATCH: usize = 64;

/// How an attempt ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// It succeeded with this output context.
    Completed(Value),
    /// It failed and the retry policy allows another attempt after `delay`.
    Retry {
        /// The error, kept as the task's last error.
        error: String,
        /// The wait before the next attempt.
        delay: Duration,
    },
    /// It failed for good.
    Failed(String),
    /// It was cut short (cancelled at the shutdown deadline, or could not be prepared): the task
    /// goes back to Ready without being charged an attempt.
    Released(String),
}

/// What to run once an outcome is recorded: the task's hook with its arguments.
pub(crate) type AfterRecorded = Box<dyn FnOnce() -> crate::workflow::HookFuture + Send>;

/// One outcome to record, with the slot its attempt held.
pub(crate) struct Report {
    pub(crate) task: TaskExecutionId,
    pub(crate) task_name: String,
    /// The attempt the outcome belongs to.
    pub(crate) attempt: u32,
    pub(crate) pipeline: PipelineExecutionId,
    /// The pipeline's facts; `None` when they could not be read (only for `Released`).
    pub(crate) info: Option<Arc<PipelineInfo>>,
    pub(crate) outcome: Outcome,
    /// The attempt's slot: reused for a task this batch claims, or freed (`None` when the task
    /// ended while it had given its slot up).
    pub(crate) slot: Option<OwnedSemaphorePermit>,
    /// The task's hook, run only if this outcome is recorded.
    pub(crate) after_recorded: Option<AfterRecorded>,
}

/// A task the completer claimed, with the slot it runs in.
pub(crate) struct Handoff {
    pub(crate) task: TaskExecution,
    pub(crate) slot: OwnedSemaphorePermit,
    /// Its input, when the batch that claimed it held every dependency's outcome.
    pub(crate) input: Option<Context<Value>>,
}

/// What the completer touches.
pub(crate) struct Recorder {
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    claims: Arc<Claims>,
    runs: Arc<Runs>,
    signals: Arc<Signals>,
    settings: Arc<Settings>,
    shutdown: Arc<Shutdown>,
    clock: Arc<dyn Clock>,
}

impl Recorder {
    /// The parts of `engine` it uses.
    pub(crate) fn of(engine: &crate::engine::Engine) -> Self {
        Self {
            store: engine.store.clone(),
            catalog: engine.catalog.clone(),
            claims: engine.claims.clone(),
            runs: engine.runs.clone(),
            signals: engine.signals.clone(),
            settings: engine.settings.clone(),
            shutdown: engine.shutdown.clone(),
            clock: engine.clock.clone(),
        }
    }
}

/// Where attempts send their reports.
#[derive(Clone)]
pub(crate) struct Completer {
    queue: mpsc::UnboundedSender<Report>,
}

impl Completer {
    /// A completer and the queue its service loop drains (spawn it with [`run`]).
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Report>) {
        let (queue, reports) = mpsc::unbounded_channel();
        (Self { queue }, reports)
    }

    /// Queues `report`; false when the service has stopped (the report and its slot are dropped).
    pub(crate) fn send(&self, report: Report) -> bool {
        self.queue.send(report).is_ok()
    }
}

/// The service loop: records batches until the services stop. Tasks it claims go to the claim
/// loop through `handoffs`, which starts their attempts.
pub(crate) async fn run(
    recorder: Arc<Recorder>,
    mut reports: mpsc::UnboundedReceiver<Report>,
    handoffs: mpsc::UnboundedSender<Handoff>,
) {
    let mut stop = recorder.shutdown.stop_services.subscribe();
    loop {
        let first = tokio::select! {
            r = reports.recv() => r,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            let Ok(next) = reports.try_recv() else { break };
            batch.push(next);
        }
        telemetry::committed(batch.len());
        record(&recorder, batch, &handoffs).await;
        recorder.signals.recorded.notify_waiters();
    }
}

/// The data of a report the transaction needs (the slot stays outside).
#[derive(Clone)]
struct Item {
    task: TaskExecutionId,
    task_name: String,
    attempt: u32,
    pipeline: PipelineExecutionId,
    info: Option<Arc<PipelineInfo>>,
    outcome: Outcome,
}

/// A pipeline's facts and the tasks a batch finished in it, with their new statuses.
type Finished = (Arc<PipelineInfo>, Vec<(String, TaskStatus)>);

/// What a committed batch did.
#[derive(Default)]
struct Recorded {
    won: HashSet<TaskExecutionId>,
    made_ready: usize,
    /// When the retries this batch scheduled come due.
    retries: Vec<UniversalTimestamp>,
    claimed: Vec<TaskExecution>,
    ended: Vec<(PipelineExecutionId, ExecutionResult)>,
}

async fn record(recorder: &Arc<Recorder>, batch: Vec<Report>, handoffs: &mpsc::UnboundedSender<Handoff>) {
    let mut hooks = HashMap::new();
    let (items, slots): (Vec<Item>, Vec<Option<OwnedSemaphorePermit>>) = batch
        .into_iter()
        .map(|r| {
            if let Some(hook) = r.after_recorded {
                hooks.insert(r.task, (r.task_name.clone(), hook));
            }
            let item = Item {
                task: r.task,
                task_name: r.task_name,
                attempt: r.attempt,
                pipeline: r.pipeline,
                info: r.info,
                outcome: r.outcome,
            };
            (item, r.slot)
        })
        .unzip();
    let claim = if recorder.shutdown.is_shutting_down() {
        0
    } else {
        u32::try_from(slots.iter().flatten().count()).unwrap_or(u32::MAX).min(recorder.settings.config.claim_batch_size)
    };
    let stamp = recorder.claims.claim_stamp();
    let (e, batch_items) = (recorder.clone(), items.clone());
    let written = recorder
        .store
        .persist("record task outcomes", Persistence::STUBBORN, move |c, try_no| {
            record_in(&e, c, &batch_items, claim, stamp, try_no)
        })
        .await;
    match written {
        Ok(recorded) => {
            let mut slots: Vec<OwnedSemaphorePermit> = slots.into_iter().flatten().collect();
            // Forget these claims before the next batch is written: `holds_others_of` counts on it.
            for item in &items {
                recorder.claims.release(item.task);
                if !recorded.won.contains(&item.task) {
                    tracing::warn!(
                        task = %item.task_name, id = %item.task,
                        "this runner's claim on the task ended before its outcome was recorded (recovery gave it \
                         to another runner); this attempt's outcome is discarded"
                    );
                }
            }
            // The claim asked for `claim` tasks: if it got them all, more may be Ready than the
            // slots it filled, so the claim loop should look (when slots are left over).
            let more_may_wait = u32::try_from(recorded.claimed.len()).unwrap_or(u32::MAX) >= claim;
            for task in recorded.claimed {
                let Some(slot) = slots.pop() else { break };
                recorder.claims.hold(task.id, task.pipeline_execution_id);
                let input = input_from_batch(&items, &recorded.won, &task);
                if let Err(unsent) = handoffs.send(Handoff { task, slot, input }) {
                    // The claim loop is gone (the runner is stopping): the claim lapses.
                    recorder.claims.release(unsent.0.task.id);
                }
            }
            if !slots.is_empty() && more_may_wait {
                drop(slots);
                recorder.signals.work_available.notify_one();
            }
            for due in recorded.retries {
                // Wake the claim loop when the retry comes due, not at the next poll.
                let recorder = recorder.clone();
                tokio::spawn(async move {
                    let mut stop = recorder.shutdown.stop_services.subscribe();
                    tokio::select! {
                        _ = sleep_until(&*recorder.clock, due.as_datetime()) => recorder.signals.work_available.notify_one(),
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
            for (id, result) in recorded.ended {
                tracing::info!(pipeline = %id, status = %result.status, "pipeline ended");
                recorder.runs.pipeline_finished(id, Some(result));
            }
            for task in &recorded.won {
                if let Some((name, hook)) = hooks.remove(task) {
                    run_hook(*task, name, hook);
                }
            }
        }
        Err(e) if items.len() > 1 && e.kind() != crate::ErrorKind::Unavailable => {
            tracing::warn!(outcomes = items.len(), error = %e, "recording a batch of outcomes failed; recording them one by one");
            for (item, slot) in items.into_iter().zip(slots) {
                let report = Report {
                    task: item.task,
                    task_name: item.task_name,
                    attempt: item.attempt,
                    pipeline: item.pipeline,
                    info: item.info,
                    outcome: item.outcome,
                    slot,
                    after_recorded: hooks.remove(&item.task).map(|(_, hook)| hook),
                };
                Box::pin(record(recorder, vec![report], handoffs)).await;
            }
        }
        Err(e) => {
            for item in &items {
                tracing::error!(
                    task = %item.task_name, id = %item.task, error = %e,
                    "recording a task outcome failed for good; the task runs again once its lease lapses"
                );
                recorder.claims.release(item.task);
            }
            drop(slots);
            recorder.signals.work_available.notify_one();
        }
    }
}

/// The batch's transaction (see the module docs). `try_no` > 0 means an earlier try may have
/// committed unseen: an outcome already in place counts as recorded, and the tasks claimed with
/// `stamp` are looked up rather than claimed again.
fn record_in(
    recorder: &Recorder,
    conn: &mut AnyConnection,
    items: &[Item],
    claim: u32,
    stamp: UniversalTimestamp,
    try_no: u32,
) -> Result<Recorded, Error> {
    let faults = &recorder.store.faults;
    faults.check(FaultPoint::RecordOutcomes, FaultTiming::Before)?;
    let in_batch: HashSet<TaskExecutionId> = items.iter().map(|i| i.task).collect();
    let recorded = write_transaction(conn, |conn| {
        let now = crate::engine::stamp(&*recorder.clock);
        if !nothing_follows(recorder, items, &in_batch) {
            pipelines::lock(conn, &items.iter().map(|i| i.pipeline).collect::<Vec<_>>())?;
        }
        let mut out = Recorded::default();
        write_outcomes(recorder, conn, items, try_no, &mut out)?;
        // What follows, per pipeline, from the tasks this batch finished.
        let mut finished: BTreeMap<PipelineExecutionId, Finished> = BTreeMap::new();
        for item in items {
            let status = match item.outcome {
                Outcome::Completed(_) => TaskStatus::Completed,
                Outcome::Failed(_) => TaskStatus::Failed,
                _ => continue,
            };
            let (true, Some(info)) = (out.won.contains(&item.task), &item.info) else { continue };
            let entry = finished.entry(item.pipeline).or_insert_with(|| (info.clone(), Vec::new()));
            entry.1.push((item.task_name.clone(), status));
        }
        // The freed slots go first to dependents this batch makes runnable, then to other Ready
        // tasks.
        let mut direct = scheduler::DirectClaim {
            runner: &recorder.settings.runner_name,
            lease: recorder.settings.config.lease_duration,
            stamp,
            budget: claim as usize,
            claimed: Vec::new(),
        };
        let mut ready_in = BTreeSet::new();
        for (id, (info, names)) in &finished {
            // A pipeline cancelled meanwhile settles to nothing: its undecided tasks are
            // Cancelled (not NotStarted) and its end is conditional on it being active.
            let made_ready = scheduler::decide_dependents(conn, faults, info, names, &mut direct, now)?;
            if made_ready > 0 {
                ready_in.insert(*id);
            }
            out.made_ready += made_ready;
        }
        out.claimed = direct.claimed;
        if claim > 0 {
            claim_for_freed_slots(recorder, conn, claim, stamp, try_no, &mut out.claimed)?;
        }
        let released = items.iter().any(|i| matches!(i.outcome, Outcome::Released(_)) && out.won.contains(&i.task));
        if out.made_ready > 0 || released {
            recorder.store.announce_work(conn)?; // Ready work this runner did not take
        }
        for (id, (info, _)) in finished {
            let unfinished = ready_in.contains(&id)
                || recorder.claims.holds_others_of(id, &in_batch)
                || out.claimed.iter().any(|t| t.pipeline_execution_id == id);
            if unfinished {
                continue; // those tasks' outcomes will look again
            }
            let recorded: Vec<(&str, &Value)> = items
                .iter()
                .filter(|i| i.pipeline == id && out.won.contains(&i.task))
                .filter_map(|i| match &i.outcome {
                    Outcome::Completed(output) => Some((i.task_name.as_str(), output)),
                    _ => None,
                })
                .collect();
            if let Some(result) = scheduler::finish_if_done(conn, faults, &info, &recorded, now)? {
                out.ended.push((id, result));
            }
        }
        Ok::<_, Error>(out)
    })?;
    faults.check(FaultPoint::RecordOutcomes, FaultTiming::AfterCommit)?;
    Ok(recorded)
}

/// Fills `claimed` up to `claim` tasks with Ready ones, claimed with the claim stamp `stamp`. On a
/// later try of the batch the tasks an earlier, unacknowledged try claimed are found by the stamp
/// first.
fn claim_for_freed_slots(
    recorder: &Recorder,
    conn: &mut AnyConnection,
    claim: u32,
    stamp: UniversalTimestamp,
    try_no: u32,
    claimed: &mut Vec<TaskExecution>,
) -> Result<(), Error> {
    let runner = recorder.settings.runner_name.as_str();
    if try_no > 0 {
        let earlier = tasks::claimed_at(conn, runner, stamp)?;
        let fresh: Vec<TaskExecution> = earlier.into_iter().filter(|t| !claimed.iter().any(|c| c.id == t.id)).collect();
        claimed.extend(fresh);
    }
    let more = claim.saturating_sub(u32::try_from(claimed.len()).unwrap_or(u32::MAX));
    if more > 0 {
        claimed.extend(tasks::claim_ready(
            conn,
            runner,
            &recorder.catalog.now().versions,
            more,
            recorder.settings.config.lease_duration,
            stamp,
        )?);
    }
    Ok(())
}

/// The input of `task`, claimed by this batch, when the batch recorded the outcome of every
/// dependency it has: its attempt then reads nothing (see [`merge_outputs`]).
fn input_from_batch(items: &[Item], won: &HashSet<TaskExecutionId>, task: &TaskExecution) -> Option<Context<Value>> {
    let pipeline = task.pipeline_execution_id;
    let info = items.iter().find(|i| i.pipeline == pipeline)?.info.as_ref()?;
    let spec = info.workflow.as_ref()?.spec().task(&task.task_name)?;
    let mut outputs = Vec::with_capacity(spec.dependencies.len());
    for dep in &spec.dependencies {
        let item = items.iter().find(|i| i.pipeline == pipeline && &i.task_name == dep && won.contains(&i.task))?;
        match &item.outcome {
            Outcome::Completed(out) => outputs.push((dep.as_str(), out)),
            Outcome::Failed(_) => {}
            Outcome::Retry { .. } | Outcome::Released(_) => return None,
        }
    }
    let output_of = |dep: &str| outputs.iter().find(|(name, _)| *name == dep).map(|(_, out)| *out);
    merge_outputs(info, &spec.dependencies, output_of).ok()
}

/// True when nothing can follow from the batch: every outcome is a completion of a task that no
/// other task depends on, and this runner holds other claims in each of their pipelines. Then
/// there is nothing to decide and the pipelines cannot have ended (the end check falls to the
/// batch that records those other outcomes, or to recovery should this runner die), so the
/// batch needs no pipeline lock: the hot path of a wide pipeline.
fn nothing_follows(recorder: &Recorder, items: &[Item], in_batch: &HashSet<TaskExecutionId>) -> bool {
    items.iter().all(|i| {
        let leaf = i
            .info
            .as_ref()
            .and_then(|info| info.workflow.as_ref())
            .is_some_and(|wf| wf.spec().dependents(&i.task_name).next().is_none());
        matches!(i.outcome, Outcome::Completed(_)) && leaf && recorder.claims.holds_others_of(i.pipeline, in_batch)
    })
}

/// Writes the batch's outcomes, each fenced on its claim, into `out`.
fn write_outcomes(
    recorder: &Recorder,
    conn: &mut AnyConnection,
    items: &[Item],
    try_no: u32,
    out: &mut Recorded,
) -> Result<(), Error> {
    let (faults, runner, now) =
        (&recorder.store.faults, recorder.settings.runner_name.as_str(), stamp(&*recorder.clock));
    let completions: Vec<(TaskExecutionId, Value)> = items
        .iter()
        .filter_map(|i| match &i.outcome {
            Outcome::Completed(output) => Some((i.task, output.clone())),
            _ => None,
        })
        .collect();
    if !completions.is_empty() {
        faults.check(FaultPoint::CompleteTasks, FaultTiming::Before)?;
        out.won.extend(tasks::complete_all(conn, runner, &completions, now)?);
    }
    for item in items {
        let won = match &item.outcome {
            Outcome::Completed(_) => continue,
            Outcome::Retry { error, delay } => {
                faults.check(FaultPoint::ScheduleRetry, FaultTiming::Before)?;
                let due = now.plus(*delay);
                let won = tasks::schedule_retry(conn, item.task, runner, error, due, now)?;
                if won {
                    out.retries.push(due);
                }
                won
            }
            Outcome::Failed(error) => {
                faults.check(FaultPoint::FailTask, FaultTiming::Before)?;
                tasks::fail(conn, item.task, runner, error, now)?
            }
            Outcome::Released(reason) => tasks::release(conn, item.task, runner, reason, now)?,
        };
        if won {
            out.won.insert(item.task);
        }
    }
    if try_no > 0 {
        for item in items {
            if !out.won.contains(&item.task) && already_recorded(conn, runner, item)? {
                out.won.insert(item.task);
            }
        }
    }
    Ok(())
}

/// True when `item`'s outcome is already in place under this runner's name: an earlier try of
/// the batch committed, but its answer was lost.
fn already_recorded(conn: &mut AnyConnection, runner: &str, item: &Item) -> Result<bool, Error> {
    let Some(row) = tasks::get(conn, item.task)? else { return Ok(false) };
    let ours = row.claimed_by.as_deref() == Some(runner);
    Ok(match item.outcome {
        Outcome::Completed(_) => ours && row.status == TaskStatus::Completed,
        Outcome::Failed(_) => ours && row.status == TaskStatus::Failed,
        Outcome::Retry { .. } | Outcome::Released(_) => {
            row.status == TaskStatus::Ready && row.attempt == item.attempt + 1 && row.claimed_by.is_none()
        }
    })
}

/// Runs a task's hook now that its outcome is durable, in a Tokio task of its own: an error or a
/// panic is logged and changes nothing.
fn run_hook(task: TaskExecutionId, name: String, hook: AfterRecorded) {
    let running = tokio::spawn(hook());
    tokio::spawn(async move {
        match running.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(task = %name, id = %task, error = %e, "task hook failed; the outcome stands"),
            Err(e) => tracing::warn!(task = %name, id = %task, error = %e, "task hook panicked; the outcome stands"),
        }
    });
}
