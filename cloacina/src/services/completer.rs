//! The completer: records attempt outcomes in batches (a group commit), each batch in one
//! transaction together with everything that follows from it, so a crash or a failed statement
//! can delay an outcome's consequences but never lose them.
//!
//! One transaction per batch: lock the batch's pipelines (ascending ids, the engine's lock order:
//! no other transaction that waits for these tasks' rows can run meanwhile); record each outcome
//! fenced on its claim (Completed with its output, Ready again for a retry, Failed, or released);
//! then let the scheduler decide the dependents of the tasks that finished and end pipelines with
//! nothing left. When nothing can follow (only completions of tasks without dependents, while
//! other attempts of their pipelines still run here), the completions are written alone: one
//! statement on PostgreSQL, the hot path of a wide pipeline. A lone outcome is written at once;
//! under load, outcomes that arrive while a batch is written go together in the next.
//!
//! A failed batch is tried again (see [`Engine::persist`]): the leases stay renewed meanwhile.
//! If it keeps failing for a reason that is not transient, its outcomes are recorded one by one,
//! so one bad outcome cannot hold the others back; one that still fails is given up, and its
//! task runs again once the lease lapses.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::dal::pipeline_executions as pipelines;
use crate::dal::task_executions as tasks;
use crate::database::{write_transaction, AnyConnection, UniversalTimestamp};
use crate::engine::{Engine, Persistence, PipelineInfo};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::{PipelineExecutionId, TaskExecutionId, TaskStatus};
use crate::results::ExecutionResult;
use crate::scheduler;
use crate::Error;

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

/// One outcome to record, and whom to tell whether it was recorded.
pub(crate) struct Report {
    pub(crate) task: TaskExecutionId,
    pub(crate) task_name: String,
    /// The attempt the outcome belongs to.
    pub(crate) attempt: u32,
    pub(crate) pipeline: PipelineExecutionId,
    /// The pipeline's facts; `None` when they could not be read (only for `Released`).
    pub(crate) info: Option<Arc<PipelineInfo>>,
    pub(crate) outcome: Outcome,
    /// `true`: recorded; `false`: the claim was lost first (another runner has the task); dropped:
    /// the write was given up (the task runs again after its lease lapses).
    pub(crate) reply: oneshot::Sender<bool>,
}

/// Where attempts send their reports.
#[derive(Clone)]
pub(crate) struct Completer {
    queue: mpsc::UnboundedSender<Report>,
}

impl Completer {
    /// A completer and the service loop that drains it (spawn it with [`run`]).
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Report>) {
        let (queue, reports) = mpsc::unbounded_channel();
        (Self { queue }, reports)
    }

    /// Queues `report`; false when the service has stopped.
    pub(crate) fn send(&self, report: Report) -> bool {
        self.queue.send(report).is_ok()
    }
}

/// The service loop: records batches until the services stop. By then every attempt has ended
/// and been answered, so nothing is left in the queue.
pub(crate) async fn run(engine: Arc<Engine>, mut reports: mpsc::UnboundedReceiver<Report>) {
    let mut stop = engine.stop_services.subscribe();
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
        record(&engine, batch).await;
    }
}

/// The data of a report the transaction needs (the reply stays outside).
#[derive(Clone)]
struct Item {
    task: TaskExecutionId,
    task_name: String,
    attempt: u32,
    pipeline: PipelineExecutionId,
    info: Option<Arc<PipelineInfo>>,
    outcome: Outcome,
}

/// What a committed batch did.
#[derive(Default)]
struct Recorded {
    won: HashSet<TaskExecutionId>,
    made_ready: usize,
    retries: Vec<Duration>,
    ended: Vec<(PipelineExecutionId, ExecutionResult)>,
}

async fn record(engine: &Arc<Engine>, batch: Vec<Report>) {
    let items: Vec<Item> = batch
        .iter()
        .map(|r| Item {
            task: r.task,
            task_name: r.task_name.clone(),
            attempt: r.attempt,
            pipeline: r.pipeline,
            info: r.info.clone(),
            outcome: r.outcome.clone(),
        })
        .collect();
    let e = engine.clone();
    let written = engine
        .persist("record task outcomes", Persistence::STUBBORN, move |c, try_no| record_in(&e, c, &items, try_no))
        .await;
    match written {
        Ok(recorded) => {
            // Forget these claims before the next batch is written: `holds_others_of` counts on it.
            for r in &batch {
                engine.release(r.task);
            }
            for r in batch {
                let _ = r.reply.send(recorded.won.contains(&r.task));
            }
            if recorded.made_ready > 0 {
                engine.work_available.notify_one();
            }
            for delay in recorded.retries {
                // Wake the claim loop when the retry comes due, not at the next poll.
                let engine = engine.clone();
                tokio::spawn(async move {
                    let mut stop = engine.stop_services.subscribe();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => engine.work_available.notify_one(),
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
            for (id, result) in recorded.ended {
                tracing::info!(pipeline = %id, status = %result.status, "pipeline ended");
                engine.pipeline_finished(id, Some(result));
            }
        }
        Err(e) if batch.len() > 1 && e.kind() != crate::ErrorKind::Unavailable => {
            tracing::warn!(outcomes = batch.len(), error = %e, "recording a batch of outcomes failed; recording them one by one");
            for report in batch {
                Box::pin(record(engine, vec![report])).await;
            }
        }
        Err(e) => {
            for r in &batch {
                tracing::error!(
                    task = %r.task_name, id = %r.task, error = %e,
                    "recording a task outcome failed for good; the task runs again once its lease lapses"
                );
            }
            // Dropping the replies tells each attempt that its outcome was not recorded.
        }
    }
}

/// The batch's transaction (see the module docs). `try_no` > 0 means an earlier try may have
/// committed unseen: an outcome already in place counts as recorded.
fn record_in(engine: &Engine, conn: &mut AnyConnection, items: &[Item], try_no: u32) -> Result<Recorded, Error> {
    let faults = &engine.faults;
    faults.check(FaultPoint::RecordOutcomes, FaultTiming::Before)?;
    let in_batch: HashSet<TaskExecutionId> = items.iter().map(|i| i.task).collect();
    let recorded = if nothing_follows(engine, items, &in_batch) {
        // One statement (PostgreSQL) or one transaction (SQLite), atomic on its own.
        let mut out = Recorded::default();
        write_outcomes(engine, conn, items, try_no, &mut out)?;
        out
    } else {
        write_transaction(conn, |conn| {
            let now = UniversalTimestamp::now();
            let pipeline_ids: Vec<PipelineExecutionId> = items.iter().map(|i| i.pipeline).collect();
            pipelines::lock(conn, &pipeline_ids)?;
            let mut out = Recorded::default();
            write_outcomes(engine, conn, items, try_no, &mut out)?;
            // What follows, per pipeline, from the tasks this batch finished.
            let mut finished: BTreeMap<PipelineExecutionId, (Arc<PipelineInfo>, Vec<String>)> = BTreeMap::new();
            for item in items {
                let terminal = matches!(item.outcome, Outcome::Completed(_) | Outcome::Failed(_));
                let (true, Some(info)) = (terminal && out.won.contains(&item.task), &item.info) else { continue };
                finished
                    .entry(item.pipeline)
                    .or_insert_with(|| (info.clone(), Vec::new()))
                    .1
                    .push(item.task_name.clone());
            }
            for (id, (info, names)) in finished {
                // A pipeline cancelled meanwhile settles to nothing: its undecided tasks are
                // Cancelled (not NotStarted) and its end is conditional on it being active.
                let others_pending = engine.holds_others_of(id, &in_batch);
                let settled = scheduler::settle(conn, faults, &info, &names, others_pending, now)?;
                out.made_ready += settled.made_ready;
                if let Some(result) = settled.ended {
                    out.ended.push((id, result));
                }
            }
            Ok::<_, Error>(out)
        })?
    };
    faults.check(FaultPoint::RecordOutcomes, FaultTiming::AfterCommit)?;
    Ok(recorded)
}

/// True when nothing can follow from the batch: every outcome is a completion of a task that no
/// other task depends on, and this runner holds other claims in each of their pipelines. Then
/// there is nothing to decide and the pipelines cannot have ended (the end check falls to the
/// batch that records those other outcomes, or to recovery should this runner die), so the
/// completions need no pipeline lock and no transaction around them: the hot path of a wide
/// pipeline.
fn nothing_follows(engine: &Engine, items: &[Item], in_batch: &HashSet<TaskExecutionId>) -> bool {
    items.iter().all(|i| {
        let leaf = i
            .info
            .as_ref()
            .and_then(|info| info.workflow.as_ref())
            .is_some_and(|wf| wf.spec().dependents(&i.task_name).next().is_none());
        matches!(i.outcome, Outcome::Completed(_)) && leaf && engine.holds_others_of(i.pipeline, in_batch)
    })
}

/// Writes the batch's outcomes, each fenced on its claim, into `out`.
fn write_outcomes(
    engine: &Engine,
    conn: &mut AnyConnection,
    items: &[Item],
    try_no: u32,
    out: &mut Recorded,
) -> Result<(), Error> {
    let (faults, runner, now) = (&engine.faults, engine.runner_name.as_str(), UniversalTimestamp::now());
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
                let won = tasks::schedule_retry(conn, item.task, runner, error, now.plus(*delay), now)?;
                if won {
                    out.retries.push(*delay);
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
