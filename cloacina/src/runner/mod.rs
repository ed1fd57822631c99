//! [`DefaultRunner`]: builds the database pool and the services (executor, heartbeat, recovery),
//! and offers the public API to start, watch and cancel pipelines.
//!
//! Shape: Config ([`DefaultRunnerConfig`]) → services each with its own loop → the runner as
//! handle, with a shutdown signal. All services share one `Engine`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::admin::RunDetails;
use crate::cron::{Clock, ScheduleConfig, SystemClock};
use crate::dal::pipeline_executions::{self as pipelines, NewPipeline, PipelineFilter};
use crate::dal::task_executions::{self as tasks, NewTask};
use crate::database::{Database, DatabaseConfig, UniversalTimestamp};
use crate::executor::{ExecutionResult, WorkflowExecutor};
use crate::models::{CronExecution, CronSchedule, CronScheduleId};
use crate::models::{PipelineExecution, PipelineExecutionId, PipelineStatus, TaskExecutionId};
use crate::workflow::Workflow;
use crate::{Context, Error};

/// Runner settings. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct DefaultRunnerConfig {
    /// Tasks this runner runs at once (default 16).
    pub max_concurrent_tasks: usize,
    /// Most tasks claimed in one statement (default 32).
    pub claim_batch_size: u32,
    /// How long a claim lasts without renewal (default 30 s).
    pub lease_duration: Duration,
    /// How often held leases are renewed (default 10 s; keep it well under the lease).
    pub heartbeat_interval: Duration,
    /// How often expired leases are looked for (default 5 s).
    pub recovery_interval: Duration,
    /// Timeout of a task attempt whose task sets none (default 5 min).
    pub default_task_timeout: Duration,
    /// How often to look for work created by other processes (default 250 ms). Work created or
    /// finished in this process wakes the runner at once.
    pub poll_interval: Duration,
    /// How long `shutdown` lets running tasks finish (default 30 s).
    pub shutdown_timeout: Duration,
    /// Database pool size (default 10).
    pub pool_size: u32,
    /// PostgreSQL schema for this runner's tables (a tenant); `None` for the default.
    pub schema: Option<String>,
    /// Name recorded as `claimed_by` (default: host name, process id and a random suffix).
    pub runner_name: Option<String>,
    /// Run the cron service (default true). Every runner may run it: the database makes each fire
    /// time start one pipeline.
    pub enable_cron: bool,
    /// A cron fire time handled within this long is on time; older ones were missed and follow
    /// the schedule's catch-up policy (default 60 s).
    pub cron_late_threshold: Duration,
    /// Longest sleep of the cron service (default 30 s), so it sees schedules changed by other
    /// processes. Changes made through this runner wake it at once.
    pub cron_recheck_interval: Duration,
}

impl Default for DefaultRunnerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_tasks: 16,
            claim_batch_size: 32,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            recovery_interval: Duration::from_secs(5),
            default_task_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(30),
            pool_size: 10,
            schema: None,
            runner_name: None,
            enable_cron: true,
            cron_late_threshold: Duration::from_secs(60),
            cron_recheck_interval: Duration::from_secs(30),
        }
    }
}

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
    /// What the cron service reads as "now".
    pub(crate) clock: Arc<dyn Clock>,
    /// Wakes the cron service: a schedule was created or changed through this runner.
    pub(crate) schedules_changed: Notify,
    /// Wakes the executor: work was created, a slot freed, a retry came due.
    pub(crate) work_available: Notify,
    /// Successful attempts for the completer to record (in batches).
    pub(crate) completions: tokio::sync::mpsc::UnboundedSender<crate::executor::Completion>,
    /// Tasks this runner holds claims on, with their pipeline (leases renewed by the heartbeat).
    pub(crate) held: Mutex<HashMap<TaskExecutionId, PipelineExecutionId>>,
    /// Waiters for a pipeline's end, told by the scheduler when it ends one (with the result)
    /// or by a cancel (without).
    waiters: Mutex<HashMap<PipelineExecutionId, watch::Sender<Ending>>>,
    /// What every task of an active pipeline needs and never changes (workflow, input context):
    /// read once per pipeline instead of once per task. Dropped when the pipeline finishes.
    pipelines: Mutex<HashMap<PipelineExecutionId, Arc<PipelineInfo>>>,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Engine {
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn held(&self) -> std::sync::MutexGuard<'_, HashMap<TaskExecutionId, PipelineExecutionId>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops `task` from the held set and tells whether it was this runner's last in-flight task
    /// of its pipeline. Removal and answer happen under one lock, so of two tasks of a pipeline
    /// finishing together exactly the later one answers true: only it needs to check whether the
    /// pipeline is finished (any task still running will do the check when it ends).
    pub(crate) fn release_and_is_last(&self, task: TaskExecutionId) -> bool {
        let mut held = self.held();
        match held.remove(&task) {
            Some(pipeline) => !held.values().any(|p| *p == pipeline),
            None => true,
        }
    }

    fn waiter(&self, id: PipelineExecutionId) -> watch::Receiver<Ending> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.entry(id).or_insert_with(|| watch::channel(Ending::Running).0).subscribe()
    }

    /// The unchanging facts of pipeline `id`, from the cache or the database. The first time a
    /// runner sees a pipeline it also moves it from `Pending` to `Running` (conditionally).
    pub(crate) async fn pipeline_info(&self, id: PipelineExecutionId) -> Result<Arc<PipelineInfo>, Error> {
        if let Some(info) = self.pipelines.lock().unwrap_or_else(PoisonError::into_inner).get(&id) {
            return Ok(info.clone());
        }
        let (p, input) = self
            .db
            .run(move |c| {
                let Some((p, input)) = pipelines::get_with_input(c, id)? else { return Ok(None) };
                if p.status == PipelineStatus::Pending {
                    let now = UniversalTimestamp::now();
                    let _ = pipelines::transition(c, id, PipelineStatus::Pending, PipelineStatus::Running, None, now)?;
                }
                Ok(Some((p, input)))
            })
            .await?
            .ok_or(Error::ExecutionNotFound(id))?;
        let info = Arc::new(PipelineInfo {
            id,
            workflow: self.workflows.get(&p.workflow_name).filter(|w| w.version() == p.workflow_version).cloned(),
            workflow_name: p.workflow_name,
            created_at: p.created_at,
            input: Context::from_json(input)?,
        });
        let mut cache = self.pipelines.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= PIPELINE_CACHE_LIMIT {
            cache.clear(); // entries of pipelines finished by other runners are never removed otherwise
        }
        cache.insert(id, info.clone());
        Ok(info)
    }

    /// The rows of a new pipeline of `wf` with input `context`, and its root tasks whose trigger
    /// rule fails on that input (they are skipped once the rows exist).
    pub(crate) fn plan_pipeline(&self, wf: &Workflow, context: &Context<Value>) -> (NewPipeline, Vec<String>) {
        let no_outcomes = crate::task::TaskOutcomes::new();
        let mut skipped_roots = Vec::new();
        let tasks = wf
            .spec()
            .tasks()
            .iter()
            .map(|t| {
                let root = t.dependencies.is_empty();
                let ready = root && t.trigger_rule.evaluate(&[], &no_outcomes, context);
                if root && !ready {
                    skipped_roots.push(t.id.clone());
                }
                NewTask {
                    name: t.id.clone(),
                    max_attempts: t.retry.max_attempts,
                    ready,
                    trigger_rules: serde_json::to_value(&t.trigger_rule).unwrap_or(Value::Null),
                    configuration: serde_json::json!({ "retry": t.retry, "timeout": t.timeout }),
                }
            })
            .collect();
        let new = NewPipeline {
            workflow_name: wf.name().to_owned(),
            workflow_version: wf.version().to_owned(),
            input: context.to_json(),
            tasks,
        };
        (new, skipped_roots)
    }

    /// After a new pipeline's rows are written: skips its failing roots and wakes the claim loop.
    pub(crate) async fn pipeline_created(
        self: &Arc<Self>,
        id: PipelineExecutionId,
        skipped_roots: Vec<String>,
    ) -> Result<(), Error> {
        if !skipped_roots.is_empty() {
            crate::scheduler::skip_roots(self, id, skipped_roots).await?;
        }
        self.work_available.notify_one();
        Ok(())
    }

    /// Drops the waiter entry of `id` once nobody listens (it ended in another process).
    fn forget_waiter(&self, id: PipelineExecutionId) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters.get(&id).is_some_and(|w| w.receiver_count() == 0) {
            waiters.remove(&id);
        }
    }

    /// Wakes everyone waiting for `id` in this process, handing them `result` when the caller
    /// has it (they read it from the database otherwise).
    pub(crate) fn pipeline_finished(&self, id: PipelineExecutionId, result: Option<ExecutionResult>) {
        self.pipelines.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let waiter = self.waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        if let Some(w) = waiter {
            w.send_replace(Ending::Ended(result.map(Arc::new)));
        }
    }
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
    /// The workflow, if this runner has it.
    pub(crate) workflow: Option<Workflow>,
    /// When the pipeline was created (a result's duration starts there).
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
    /// The pipeline's input context.
    pub(crate) input: Context<Value>,
}

/// The runner: embeds the engine in your process. Create it with [`DefaultRunner::new`],
/// [`DefaultRunner::with_config`] or [`DefaultRunner::builder`]; stop it with [`DefaultRunner::shutdown`].
pub struct DefaultRunner {
    engine: Arc<Engine>,
    services: Mutex<Vec<JoinHandle<()>>>,
}

/// Assembles a [`DefaultRunner`].
pub struct DefaultRunnerBuilder {
    url: String,
    config: DefaultRunnerConfig,
    workflows: Vec<Workflow>,
    clock: Arc<dyn Clock>,
}

impl DefaultRunnerBuilder {
    /// Replaces the configuration.
    pub fn config(mut self, config: DefaultRunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// Keeps the tables in a PostgreSQL schema (a tenant).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.config.schema = Some(schema.into());
        self
    }

    /// Registers a workflow with this runner (in addition to those `#[workflow]` registered;
    /// one with the same name replaces the registered one).
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflows.push(workflow);
        self
    }

    /// Sets the clock the cron service reads (default: the system clock). A
    /// [`ManualClock`](crate::cron::ManualClock) makes schedules testable without waiting.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Connects (migrating the database), records the workflows in `workflow_registry` and starts
    /// the services.
    pub async fn build(self) -> Result<DefaultRunner, Error> {
        let DefaultRunnerBuilder { url, config, workflows, clock } = self;
        let db_config =
            DatabaseConfig { pool_size: config.pool_size, schema: config.schema.clone(), ..Default::default() };
        let db = tokio::task::spawn_blocking(move || Database::connect_with(&url, db_config))
            .await
            .map_err(|e| crate::database::Error::Task(e.to_string()))??;
        let mut by_name = HashMap::new();
        for wf in crate::workflow::registered().into_iter().chain(workflows) {
            let (name, version, graph) = (wf.name().to_owned(), wf.version().to_owned(), wf.spec().graph_json());
            db.run(move |c| {
                crate::dal::workflow_registry::record_seen(c, &name, &version, &graph, UniversalTimestamp::now())
            })
            .await?;
            by_name.insert(wf.name().to_owned(), wf);
        }
        let runner_name = config.runner_name.clone().unwrap_or_else(default_runner_name);
        let (shutdown, _) = watch::channel(false);
        let (completions, completed) = tokio::sync::mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            db,
            config,
            runner_name,
            versions: Arc::new(by_name.values().map(|w| w.version().to_owned()).collect()),
            workflow_names: Arc::new(by_name.keys().cloned().collect()),
            workflows: by_name,
            clock,
            schedules_changed: Notify::new(),
            work_available: Notify::new(),
            completions,
            held: Mutex::default(),
            waiters: Mutex::default(),
            pipelines: Mutex::default(),
            shutdown,
        });
        let mut services = vec![
            tokio::spawn(crate::executor::run_claim_loop(engine.clone())),
            tokio::spawn(crate::executor::run_completer(engine.clone(), completed)),
            tokio::spawn(crate::executor::run_heartbeat(engine.clone())),
            tokio::spawn(crate::recovery::run(engine.clone())),
            tokio::spawn(refresh_registry(engine.clone())),
        ];
        if engine.config.enable_cron {
            services.push(tokio::spawn(crate::cron::service::run(engine.clone())));
        }
        tracing::info!(runner = %engine.runner_name, database = %engine.db.url(), "runner started");
        Ok(DefaultRunner { engine, services: Mutex::new(services) })
    }
}

/// Keeps this runner's workflow versions live in `workflow_registry`, so pipelines of those
/// versions are not reported as waiting for a runner.
async fn refresh_registry(engine: Arc<Engine>) {
    let period = crate::dal::workflow_registry::REFRESH_INTERVAL;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let versions = engine.versions.clone();
        let touched =
            engine.db.run(move |c| crate::dal::workflow_registry::touch(c, &versions, UniversalTimestamp::now())).await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, "refreshing the workflow registry failed");
        }
    }
}

fn default_runner_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

impl DefaultRunner {
    /// A builder for `url` with the default configuration and no workflows.
    pub fn builder(url: impl Into<String>) -> DefaultRunnerBuilder {
        DefaultRunnerBuilder {
            url: url.into(),
            config: DefaultRunnerConfig::default(),
            workflows: Vec::new(),
            clock: Arc::new(SystemClock),
        }
    }

    /// A runner on `url` with the default configuration and every `#[workflow]` of the binary.
    pub async fn new(url: &str) -> Result<Self, Error> {
        Self::with_config(url, DefaultRunnerConfig::default()).await
    }

    /// A runner on `url` with `config` and every `#[workflow]` of the binary. Add workflows built
    /// at run time with [`DefaultRunner::builder`].
    pub async fn with_config(url: &str, config: DefaultRunnerConfig) -> Result<Self, Error> {
        Self::builder(url).config(config).build().await
    }

    /// A runner on `url` whose tables live in the PostgreSQL schema `schema` (a tenant), created
    /// and migrated on first use. Tenants on one database never see each other's runs. SQLite has
    /// no schemas (use one file per tenant): asking for one there is an error.
    pub async fn with_schema(url: &str, schema: &str) -> Result<Self, Error> {
        Self::builder(url).schema(schema).build().await
    }

    /// Everything about one run: tasks, attempts, errors, recovery events, and, while no live
    /// runner has its workflow version, that it is waiting for one.
    pub async fn execution_details(&self, id: PipelineExecutionId) -> Result<RunDetails, Error> {
        let details = self.engine.db.run(move |c| crate::admin::run_details(c, id, chrono::Utc::now())).await?;
        details.ok_or(Error::ExecutionNotFound(id))
    }

    /// Creates a cron schedule. The expression, time zone and bounds are checked now (a clear
    /// error, nothing stored, when they are wrong), and the workflow must be one this runner has.
    pub async fn create_schedule(&self, config: ScheduleConfig) -> Result<CronSchedule, Error> {
        if !self.engine.workflows.contains_key(&config.workflow) {
            return Err(Error::UnknownWorkflow(config.workflow));
        }
        let new = config.to_new_schedule(self.engine.clock.now())?;
        let now = UniversalTimestamp::from(self.engine.clock.now());
        let schedule = self
            .engine
            .db
            .run(move |c| {
                let id = crate::dal::cron_schedules::insert(c, &new, now)?;
                crate::dal::cron_schedules::get(c, id)
            })
            .await?
            .ok_or(crate::database::Error::Query(diesel::result::Error::NotFound))?;
        self.engine.schedules_changed.notify_one();
        Ok(schedule)
    }

    /// Every schedule, oldest first.
    pub async fn list_schedules(&self) -> Result<Vec<CronSchedule>, Error> {
        Ok(self.engine.db.run(crate::dal::cron_schedules::list).await?)
    }

    /// The schedule with this id.
    pub async fn get_schedule(&self, id: CronScheduleId) -> Result<CronSchedule, Error> {
        self.schedule_op(move |c, _| crate::cron::get(c, id)).await
    }

    /// Replaces a schedule's settings (checked as in [`DefaultRunner::create_schedule`]); its next
    /// fire time is recomputed from now.
    pub async fn update_schedule(&self, id: CronScheduleId, config: ScheduleConfig) -> Result<CronSchedule, Error> {
        if !self.engine.workflows.contains_key(&config.workflow) {
            return Err(Error::UnknownWorkflow(config.workflow));
        }
        self.schedule_op(move |c, now| crate::cron::update(c, id, &config, now)).await
    }

    /// Pauses a schedule; returns whether it was running.
    pub async fn pause_schedule(&self, id: CronScheduleId) -> Result<bool, Error> {
        self.schedule_op(move |c, now| crate::cron::pause(c, id, now)).await
    }

    /// Resumes a paused schedule from now (times passed while paused are not run); returns
    /// whether it was paused.
    pub async fn resume_schedule(&self, id: CronScheduleId) -> Result<bool, Error> {
        self.schedule_op(move |c, now| crate::cron::resume(c, id, now)).await
    }

    /// Deletes a schedule and its fire-time history; returns whether it existed.
    pub async fn delete_schedule(&self, id: CronScheduleId) -> Result<bool, Error> {
        self.schedule_op(move |c, _| crate::cron::delete(c, id)).await
    }

    /// The next `n` fire times of a schedule.
    pub async fn next_fire_times(
        &self,
        id: CronScheduleId,
        n: usize,
    ) -> Result<Vec<chrono::DateTime<chrono::Utc>>, Error> {
        self.schedule_op(move |c, now| crate::cron::upcoming(&crate::cron::get(c, id)?, n, now)).await
    }

    /// The fire times a schedule has claimed, newest first, with the pipeline each started.
    pub async fn schedule_history(&self, id: CronScheduleId, limit: u32) -> Result<Vec<CronExecution>, Error> {
        Ok(self.engine.db.run(move |c| crate::dal::cron_executions::list_for_schedule(c, id, limit)).await?)
    }

    /// Runs a schedule operation on a pooled connection at the cron clock's "now", then wakes the
    /// cron service.
    async fn schedule_op<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::database::AnyConnection, chrono::DateTime<chrono::Utc>) -> Result<T, Error>
            + Send
            + 'static,
    {
        let now = self.engine.clock.now();
        let db = self.engine.db.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut conn = db.get()?;
            op(&mut conn, now)
        })
        .await
        .map_err(|e| crate::database::Error::Task(e.to_string()))??;
        self.engine.schedules_changed.notify_one();
        Ok(out)
    }

    /// A handle on an existing pipeline (started by another call, a cron schedule or another
    /// process), to wait for it, look at its status or cancel it.
    pub async fn attach(&self, id: PipelineExecutionId) -> Result<ExecutionHandle, Error> {
        let exists = self.engine.db.run(move |c| pipelines::get(c, id)).await?.is_some();
        if !exists {
            return Err(Error::ExecutionNotFound(id));
        }
        Ok(ExecutionHandle { engine: self.engine.clone(), id })
    }

    /// The name this runner claims tasks under.
    pub fn runner_name(&self) -> &str {
        &self.engine.runner_name
    }

    /// The database this runner uses.
    pub fn database(&self) -> &Database {
        &self.engine.db
    }

    /// Stops claiming, lets running tasks finish up to the shutdown timeout, releases the claims
    /// of tasks still running then (another runner may take them at once), and stops the services.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let _ = self.engine.shutdown.send(true);
        self.engine.work_available.notify_one();
        let deadline = tokio::time::Instant::now() + self.engine.config.shutdown_timeout;
        while !self.engine.held().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Tasks still running at the deadline are given back (no attempt spent) so another runner
        // can take them at once; if one finishes anyway, its completion is refused by the fence.
        let still_held: Vec<TaskExecutionId> = self.engine.held().keys().copied().collect();
        if !still_held.is_empty() {
            let runner = self.engine.runner_name.clone();
            let released = self
                .engine
                .db
                .run(move |c| {
                    let now = UniversalTimestamp::now();
                    let mut n = 0;
                    for id in still_held {
                        n += usize::from(tasks::release(c, id, &runner, now)?);
                    }
                    Ok(n)
                })
                .await?;
            tracing::warn!(released, "shutdown deadline reached; released tasks still running");
        }
        let services: Vec<_> = std::mem::take(&mut *self.services.lock().unwrap_or_else(PoisonError::into_inner));
        for s in services {
            s.abort();
        }
        tracing::info!(runner = %self.engine.runner_name, "runner stopped");
        Ok(())
    }
}

impl Drop for DefaultRunner {
    fn drop(&mut self) {
        let _ = self.engine.shutdown.send(true);
        for s in self.services.get_mut().unwrap_or_else(PoisonError::into_inner).drain(..) {
            s.abort();
        }
    }
}

impl WorkflowExecutor for DefaultRunner {
    /// Starts a pipeline of `workflow` with `context` and returns a handle at once.
    async fn execute_async(&self, workflow: &str, context: Context<Value>) -> Result<ExecutionHandle, Error> {
        if self.engine.is_shutting_down() {
            return Err(Error::ShutDown);
        }
        let wf = self.engine.workflows.get(workflow).ok_or_else(|| Error::UnknownWorkflow(workflow.to_owned()))?;
        let (new, skipped_roots) = self.engine.plan_pipeline(wf, &context);
        let id = self.engine.db.run(move |c| pipelines::create(c, &new, UniversalTimestamp::now())).await?;
        self.engine.pipeline_created(id, skipped_roots).await?;
        Ok(ExecutionHandle { engine: self.engine.clone(), id })
    }

    /// Pipelines matching `filter`, newest first.
    async fn list_executions(&self, filter: PipelineFilter) -> Result<Vec<PipelineExecution>, Error> {
        Ok(self.engine.db.run(move |c| pipelines::list(c, &filter)).await?)
    }

    async fn execute(&self, workflow: &str, context: Context<Value>) -> Result<ExecutionResult, Error> {
        self.execute_async(workflow, context).await?.wait_for_completion().await
    }

    async fn get_execution_status(&self, id: PipelineExecutionId) -> Result<PipelineStatus, Error> {
        let p = self.engine.db.run(move |c| pipelines::get(c, id)).await?;
        Ok(p.ok_or(Error::ExecutionNotFound(id))?.status)
    }

    async fn cancel(&self, id: PipelineExecutionId) -> Result<bool, Error> {
        cancel(&self.engine, id).await
    }

    async fn pause(&self, id: PipelineExecutionId) -> Result<bool, Error> {
        Ok(self
            .engine
            .db
            .run(move |c| {
                let now = UniversalTimestamp::now();
                let pausable = [PipelineStatus::Pending, PipelineStatus::Running];
                pipelines::transition_from_any(c, id, &pausable, PipelineStatus::Paused, now)
            })
            .await?)
    }

    async fn resume(&self, id: PipelineExecutionId) -> Result<bool, Error> {
        let resumed = self
            .engine
            .db
            .run(move |c| {
                pipelines::transition(
                    c,
                    id,
                    PipelineStatus::Paused,
                    PipelineStatus::Running,
                    None,
                    UniversalTimestamp::now(),
                )
            })
            .await?;
        if resumed {
            // Everything may have finished while it was paused.
            crate::scheduler::finalize_if_done(&self.engine, id).await?;
            self.engine.work_available.notify_one();
        }
        Ok(resumed)
    }
}

async fn cancel(engine: &Arc<Engine>, id: PipelineExecutionId) -> Result<bool, Error> {
    let cancelled = engine.db.run(move |c| pipelines::cancel(c, id, UniversalTimestamp::now())).await?;
    if cancelled {
        engine.pipeline_finished(id, None);
    }
    Ok(cancelled)
}

/// A started pipeline.
pub struct ExecutionHandle {
    engine: Arc<Engine>,
    id: PipelineExecutionId,
}

impl ExecutionHandle {
    /// The pipeline's id.
    pub fn execution_id(&self) -> PipelineExecutionId {
        self.id
    }

    /// The pipeline's current status.
    pub async fn status(&self) -> Result<PipelineStatus, Error> {
        let id = self.id;
        let p = self.engine.db.run(move |c| pipelines::get(c, id)).await?;
        Ok(p.ok_or(Error::ExecutionNotFound(id))?.status)
    }

    /// Cancels the pipeline: tasks not yet started never run. Returns whether this call cancelled it.
    pub async fn cancel(&self) -> Result<bool, Error> {
        cancel(&self.engine, self.id).await
    }

    /// Waits for a terminal status and returns the result. When this process ends the pipeline
    /// the result is handed over at once; pipelines ended by other processes are polled for.
    pub async fn wait_for_completion(self) -> Result<ExecutionResult, Error> {
        let id = self.id;
        loop {
            // Subscribe before looking, so an end between the look and the wait is not missed.
            let mut ending = self.engine.waiter(id);
            if let Some(result) = crate::executor::result_if_terminal(&self.engine.db, id).await? {
                drop(ending);
                self.engine.forget_waiter(id);
                return Ok(result);
            }
            tokio::select! {
                heard = ending.wait_for(|e| matches!(e, Ending::Ended(_))) => {
                    if let Ok(e) = heard {
                        if let Ending::Ended(Some(result)) = &*e {
                            return Ok(ExecutionResult::clone(result));
                        }
                    }
                }
                _ = tokio::time::sleep(self.engine.config.poll_interval) => {}
            }
        }
    }
}
