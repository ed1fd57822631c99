//! The state a runner's services share: the database, settings, workflows, the claims this runner
//! holds, what never changes about an active pipeline, waiters for pipelines' ends, wake-ups and
//! the shutdown signals. Below the services: it imports none of them.
//!
//! Also the one policy for a failed database step ([`Engine::persist`]): try again with backoff,
//! without limit while the error is classified retryable, a few times otherwise.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::config::DefaultRunnerConfig;
use crate::dal::pipeline_executions as pipelines;
use crate::dal::task_execution_metadata as outputs;
use crate::database::{AnyConnection, Database, UniversalTimestamp};
use crate::faults::Faults;
use crate::models::{PipelineExecutionId, TaskExecutionId};
use crate::results::ExecutionResult;
use crate::trigger::Trigger;
use crate::workflow::Workflow;
use crate::Context;

/// State shared by the runner's services.
pub(crate) struct Engine {
    pub(crate) db: Database,
    pub(crate) config: DefaultRunnerConfig,
    pub(crate) runner_name: String,
    pub(crate) workflows: HashMap<String, Workflow>,
    /// The structural version of each workflow in `workflows`: the claim takes only their tasks.
    pub(crate) versions: Arc<Vec<String>>,
    /// The names in `workflows`: the cron service handles only their schedules.
    pub(crate) workflow_names: Arc<Vec<String>>,
    /// The event triggers this runner polls (those whose workflow it has).
    pub(crate) triggers: Arc<Vec<Trigger>>,
    /// Where every time the engine uses comes from ([`Engine::now`]).
    pub(crate) clock: Arc<dyn Clock>,
    /// Faults a test armed for this runner (always empty without the `failpoints` feature).
    pub(crate) faults: Faults,
    /// Wakes the cron service: a schedule was created or changed through this runner.
    pub(crate) schedules_changed: Notify,
    /// Wakes the claim loop: work was created, a slot freed, a retry came due.
    pub(crate) work_available: Notify,
    /// Told after each batch the completer wrote (shutdown waits for the last).
    pub(crate) recorded: Notify,
    /// The last claim stamp handed out (microseconds since the epoch), so stamps never repeat.
    last_stamp: std::sync::atomic::AtomicI64,
    /// Tasks this runner holds claims on (their leases are renewed by the heartbeat).
    held: Mutex<HashMap<TaskExecutionId, Held>>,
    /// Waiters for a pipeline's end, told when this process ends one (with the result) or
    /// cancels it (without).
    waiters: Mutex<HashMap<PipelineExecutionId, watch::Sender<Ending>>>,
    /// What every task of an active pipeline needs and never changes: read once per pipeline.
    pipelines: Mutex<HashMap<PipelineExecutionId, Arc<PipelineInfo>>>,
    /// Shutdown, first phase: claim nothing more.
    pub(crate) stop_claiming: watch::Sender<bool>,
    /// Shutdown, second phase (the deadline passed): cancel attempts still running.
    pub(crate) cancel_attempts: watch::Sender<bool>,
    /// Shutdown, last phase: the background services stop.
    pub(crate) stop_services: watch::Sender<bool>,
}

/// A claim this runner holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    pipeline: PipelineExecutionId,
    /// The attempt ended and its outcome is being recorded: the lease is still renewed (a slow
    /// or retried write must not lose it), but a renewal that misses it is no loss (it may just
    /// have been recorded).
    recording: bool,
}

/// What a waiter for a pipeline hears.
#[derive(Clone)]
pub(crate) enum Ending {
    /// Not ended (as far as this process knows).
    Running,
    /// Ended; with the result when the process that ended it is this one.
    Ended(Option<Arc<ExecutionResult>>),
}

/// Most pipelines whose facts are cached at once.
const PIPELINE_CACHE_LIMIT: usize = 10_000;

/// The facts of a pipeline that never change while it runs.
pub(crate) struct PipelineInfo {
    pub(crate) id: PipelineExecutionId,
    pub(crate) workflow_name: String,
    /// The workflow, if this runner has the version the pipeline started with.
    pub(crate) workflow: Option<Workflow>,
    /// When the pipeline was created (a result's duration starts there).
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
    /// The pipeline's input context.
    pub(crate) input: Context<Value>,
}

/// How many times an engine step tries a database call before it gives up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Persistence {
    /// Tries for errors classified retryable (a lost connection, a serialization failure);
    /// `None`: until the runner's services stop.
    pub(crate) retryable: Option<u32>,
    /// Tries for every other error, deadlocks and SQLite's "database is locked" included (Diesel
    /// gives no code for them, so they cannot be told apart from lasting errors).
    pub(crate) other: u32,
}

impl Persistence {
    /// For writes whose loss would cost a task's result: retry a lost connection for as long as
    /// the runner lives, anything else a few times.
    pub(crate) const STUBBORN: Persistence = Persistence { retryable: None, other: 6 };
    /// For calls made on a caller's behalf: a few tries, then the caller hears the error.
    pub(crate) const BRIEF: Persistence = Persistence { retryable: Some(4), other: 2 };
}

impl Engine {
    /// A new engine with nothing held and no waiters.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: Database,
        config: DefaultRunnerConfig,
        runner_name: String,
        workflows: HashMap<String, Workflow>,
        triggers: Vec<Trigger>,
        clock: Arc<dyn Clock>,
        faults: Faults,
    ) -> Self {
        Self {
            db,
            config,
            runner_name,
            versions: Arc::new(workflows.values().map(|w| w.version().to_owned()).collect()),
            workflow_names: Arc::new(workflows.keys().cloned().collect()),
            workflows,
            triggers: Arc::new(triggers),
            clock,
            faults,
            schedules_changed: Notify::new(),
            work_available: Notify::new(),
            recorded: Notify::new(),
            last_stamp: std::sync::atomic::AtomicI64::new(0),
            held: Mutex::default(),
            waiters: Mutex::default(),
            pipelines: Mutex::default(),
            stop_claiming: watch::channel(false).0,
            cancel_attempts: watch::channel(false).0,
            stop_services: watch::channel(false).0,
        }
    }

    /// The current time by the runner's clock, to the microsecond (as the database stores it).
    pub(crate) fn now(&self) -> UniversalTimestamp {
        UniversalTimestamp::from(self.clock.now())
    }

    /// Sleeps until the runner's clock shows `at`: a timer on the system clock; on a clock that
    /// jumps (a manual one), until it is set to `at` or later.
    pub(crate) async fn sleep_until(&self, at: chrono::DateTime<chrono::Utc>) {
        let mut changes = self.clock.changes();
        loop {
            let left = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                return;
            }
            match changes.as_mut() {
                Some(jumps) => {
                    if jumps.changed().await.is_err() {
                        std::future::pending::<()>().await; // the clock is gone: it never moves
                    }
                }
                None => tokio::time::sleep(left).await,
            }
        }
    }

    /// The payload of this runner's work announcements: `<schema>:<runner name>` (the schema
    /// empty when none is set), so listeners skip other schemas' work and their own.
    pub(crate) fn work_signal(&self) -> String {
        format!("{}:{}", self.db.schema().unwrap_or(""), self.runner_name)
    }

    /// Announces, inside the caller's transaction, that it leaves Ready work other runners may
    /// take: they are woken when it commits (PostgreSQL; a no-op on SQLite, whose runners poll).
    pub(crate) fn announce_work(&self, conn: &mut AnyConnection) -> Result<(), crate::Error> {
        Ok(crate::database::notify_work(conn, &self.work_signal())?)
    }

    /// True once shutdown began: nothing new is claimed or started.
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.stop_claiming.borrow()
    }

    fn held_map(&self) -> MutexGuard<'_, HashMap<TaskExecutionId, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a claim this runner now holds.
    pub(crate) fn hold(&self, task: TaskExecutionId, pipeline: PipelineExecutionId) {
        self.held_map().insert(task, Held { pipeline, recording: false });
    }

    /// Marks a held task's attempt as ended (its outcome is being recorded).
    pub(crate) fn mark_recording(&self, task: TaskExecutionId) {
        if let Some(h) = self.held_map().get_mut(&task) {
            h.recording = true;
        }
    }

    /// Forgets a claim: its outcome is recorded, or it was given up (the lease then lapses).
    pub(crate) fn release(&self, task: TaskExecutionId) {
        self.held_map().remove(&task);
    }

    /// Every claim held, with the pipeline.
    pub(crate) fn held_tasks(&self) -> Vec<(TaskExecutionId, PipelineExecutionId)> {
        self.held_map().iter().map(|(t, h)| (*t, h.pipeline)).collect()
    }

    /// True while this runner holds a claim on a task of `pipeline` other than `batch`'s: that
    /// task's outcome is still to be recorded (the completer forgets a claim as soon as it has
    /// recorded its outcome), so the pipeline cannot have ended yet, and whoever records that
    /// outcome will look again.
    pub(crate) fn holds_others_of(&self, pipeline: PipelineExecutionId, batch: &HashSet<TaskExecutionId>) -> bool {
        self.held_map().iter().any(|(t, h)| h.pipeline == pipeline && !batch.contains(t))
    }

    /// True when this runner holds no claim: every outcome is recorded.
    pub(crate) fn holds_nothing(&self) -> bool {
        self.held_map().is_empty()
    }

    /// A claim stamp: the time a claim statement writes as its tasks' `started_at`, by which a
    /// claim whose answer was lost finds its tasks again. Strictly increasing per runner, so two
    /// claims never share one.
    pub(crate) fn claim_stamp(&self) -> UniversalTimestamp {
        use std::sync::atomic::Ordering;
        let now = self.now().as_datetime().timestamp_micros();
        let prev = self.last_stamp.fetch_max(now, Ordering::SeqCst);
        let micros = if now > prev { now } else { self.last_stamp.fetch_add(1, Ordering::SeqCst) + 1 };
        UniversalTimestamp::from(chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default())
    }

    /// True while `task` is held and its attempt still running (not being recorded).
    pub(crate) fn is_running_here(&self, task: TaskExecutionId) -> bool {
        self.held_map().get(&task).is_some_and(|h| !h.recording)
    }

    pub(crate) fn waiter(&self, id: PipelineExecutionId) -> watch::Receiver<Ending> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.entry(id).or_insert_with(|| watch::channel(Ending::Running).0).subscribe()
    }

    /// The pipelines someone in this process waits for.
    pub(crate) fn waited_pipelines(&self) -> Vec<PipelineExecutionId> {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.iter().filter(|(_, w)| w.receiver_count() > 0).map(|(id, _)| *id).collect()
    }

    /// Drops the waiter entry of `id` once nobody listens (it ended in another process).
    pub(crate) fn forget_waiter(&self, id: PipelineExecutionId) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters.get(&id).is_some_and(|w| w.receiver_count() == 0) {
            waiters.remove(&id);
        }
    }

    /// Wakes everyone waiting for `id` in this process, handing them `result` when the caller
    /// has it (they read it from the database otherwise), and drops the pipeline's cached facts.
    pub(crate) fn pipeline_finished(&self, id: PipelineExecutionId, result: Option<ExecutionResult>) {
        self.pipelines.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let waiter = self.waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        if let Some(w) = waiter {
            w.send_replace(Ending::Ended(result.map(Arc::new)));
        }
    }

    /// The cached facts of pipeline `id`, if this runner has read them.
    pub(crate) fn cached_pipeline(&self, id: PipelineExecutionId) -> Option<Arc<PipelineInfo>> {
        self.pipelines.lock().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// The unchanging facts of pipeline `id`, from the cache or read on `conn`; `None` if there
    /// is no such pipeline.
    pub(crate) fn pipeline_info_in(
        &self,
        conn: &mut AnyConnection,
        id: PipelineExecutionId,
    ) -> Result<Option<Arc<PipelineInfo>>, crate::Error> {
        if let Some(info) = self.pipelines.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
            return Ok(Some(info.clone()));
        }
        let Some((p, input)) = pipelines::get_with_input(conn, id)? else { return Ok(None) };
        let info = Arc::new(PipelineInfo {
            id,
            workflow: self.workflows.get(&p.workflow_name).filter(|w| w.version() == p.workflow_version).cloned(),
            workflow_name: p.workflow_name,
            created_at: p.created_at,
            input: Context::from_value(input)?,
        });
        let mut cache = self.pipelines.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= PIPELINE_CACHE_LIMIT {
            cache.clear(); // entries of pipelines finished by other runners are never removed otherwise
        }
        cache.insert(id, info.clone());
        Ok(Some(info))
    }

    /// Runs the database step `op` as `policy` says: on failure it tries again after a growing,
    /// jittered pause (20 ms doubling to 1 s). `op` learns which try it is (from 0), so a step
    /// whose earlier try may have committed unseen can check before it writes again.
    pub(crate) async fn persist<T, F>(&self, what: &'static str, policy: Persistence, op: F) -> Result<T, crate::Error>
    where
        T: Send + 'static,
        F: Fn(&mut AnyConnection, u32) -> Result<T, crate::Error> + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        let (mut retryable_tries, mut other_tries) = (0u32, 0u32);
        let mut stop = self.stop_services.subscribe();
        loop {
            let this_try = retryable_tries + other_tries;
            let call = op.clone();
            let err = match self.db.run_with(move |c| call(c, this_try)).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            crate::telemetry::database_error(err.kind());
            let retryable = err.kind() == crate::ErrorKind::Unavailable;
            let (tries, limit) = if retryable {
                retryable_tries += 1;
                (retryable_tries, policy.retryable)
            } else {
                other_tries += 1;
                (other_tries, Some(policy.other))
            };
            if limit.is_some_and(|l| tries >= l) || *stop.borrow() {
                return Err(err);
            }
            if tries == 1 {
                tracing::warn!(step = what, error = %err, "database step failed; trying again");
            } else {
                tracing::debug!(step = what, error = %err, tries, "database step failed again");
            }
            let pause = backoff(tries);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Waits for the next tick of a service's `interval`; false once the services are told to stop.
pub(crate) async fn next_tick(interval: &mut tokio::time::Interval, stop: &mut watch::Receiver<bool>) -> bool {
    let ticked = tokio::select! {
        _ = interval.tick() => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    ticked && !*stop.borrow()
}

/// The pause before try `n + 1` of a failed database step: 20 ms doubling to 1 s, with ±50 %
/// jitter so runners that failed together do not retry together.
fn backoff(tries: u32) -> Duration {
    let base = Duration::from_millis(20).saturating_mul(1 << tries.min(6)).min(Duration::from_secs(1));
    base.mul_f64(0.5 + fastrand::f64())
}

/// A task's input: the pipeline input, then each dependency's output in declared order (later
/// keys win).
pub(crate) fn input_context(
    conn: &mut AnyConnection,
    info: &PipelineInfo,
    dependencies: &[String],
) -> Result<Context<Value>, crate::Error> {
    if dependencies.is_empty() {
        return Ok(info.input.clone());
    }
    let outs = outputs::outputs_of(conn, info.id, dependencies)?;
    merge_outputs(info, dependencies, |dep| outs.iter().find(|(name, _)| name == dep).map(|(_, out)| out))
}

/// The pipeline input merged with the outputs `output_of` gives for `dependencies`, in declared
/// order (a dependency without output, Failed or Skipped, adds nothing).
pub(crate) fn merge_outputs<'a>(
    info: &PipelineInfo,
    dependencies: &[String],
    output_of: impl Fn(&str) -> Option<&'a Value>,
) -> Result<Context<Value>, crate::Error> {
    let mut ctx = info.input.clone();
    for dep in dependencies {
        if let Some(out) = output_of(dep) {
            ctx.merge(&Context::from_value(out.clone())?);
        }
    }
    Ok(ctx)
}

/// This machine's host name (`/etc/hostname`, else `$HOSTNAME`).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned())
}

/// The machine this process runs on.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    /// The kernel's boot id, which every process and container of one machine shares (the host
    /// name where there is none).
    pub(crate) id: String,
    /// The host name, for people.
    pub(crate) name: String,
}

impl Host {
    pub(crate) fn this() -> Host {
        let name = host_name();
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| name.clone());
        Host { id, name }
    }
}
