//! [`DefaultRunner`]: the public face of the engine. It validates the settings, connects, records
//! its workflows in the registry, assembles the services (claim loop, completer, heartbeat,
//! recovery, registry refresh, cron) around one shared engine, and offers the API to start, watch,
//! pause, resume and cancel pipelines and to manage cron schedules. It owns nothing else.
//!
//! Shutdown runs in three phases: stop claiming; let running attempts finish until
//! `shutdown_timeout`, then cancel the rest (a cancelled attempt's task is given back, recorded as
//! a recovery event); stop the background services once every outcome is recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

mod catalog;
pub mod runtime;
mod schedules;
mod triggers;

use crate::cron::{Clock, SystemClock};
use crate::database::{write_transaction, Database, DatabaseConfig, UniversalTimestamp};
use crate::engine::{host_name, Catalog, Engine, Host, Persistence};
use crate::executor::{cancel, ExecutionResult, WorkflowExecutor};
use crate::faults::{FaultPoint, FaultTiming, Faults};
use crate::models::{PipelineExecution, PipelineExecutionId, PipelineStatus};
use crate::ops::runs::RunFilter as PipelineFilter;
use crate::ops::RunDetails;
use crate::services::{self, Services};
use crate::trigger::Trigger;
use crate::workflow::Workflow;
use crate::{scheduler, Context, Error};

pub use crate::config::{DefaultRunnerConfig, DefaultRunnerConfigBuilder};
pub use crate::executor::ExecutionHandle;
pub use crate::ops::schedules::CronExecutionStats;

/// Workflows to add to a running runner, with the event triggers and cron triggers that start
/// them (a package's contents).
#[derive(Clone, Default, Debug)]
pub struct WorkflowSet {
    /// The workflows; each becomes the version new runs of its name start at.
    pub workflows: Vec<Workflow>,
    /// Event triggers to poll (their workflows must be among `workflows` or already offered).
    pub triggers: Vec<Trigger>,
    /// Cron schedules declared in code: each is created once, keyed by its name.
    pub cron_triggers: Vec<crate::trigger::CronTrigger>,
}

/// How long shutdown waits, after cancelling the last attempts, for their outcomes to be recorded.
const RECORDING_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The runner: embeds the engine in your process. Create it with [`DefaultRunner::new`],
/// [`DefaultRunner::with_config`] or [`DefaultRunner::builder`]; stop it with [`DefaultRunner::shutdown`].
pub struct DefaultRunner {
    engine: Arc<Engine>,
    services: Mutex<Option<Services>>,
}

/// Assembles a [`DefaultRunner`]: `DefaultRunner::builder(url)`, or upstream's
/// `DefaultRunnerBuilder::new().database_url(url)`.
pub struct DefaultRunnerBuilder {
    url: Option<String>,
    config: DefaultRunnerConfig,
    workflows: Vec<Workflow>,
    triggers: Vec<Trigger>,
    clock: Arc<dyn Clock>,
    faults: Faults,
}

impl Default for DefaultRunnerBuilder {
    fn default() -> Self {
        Self {
            url: None,
            config: DefaultRunnerConfig::default(),
            workflows: Vec::new(),
            triggers: Vec::new(),
            clock: Arc::new(SystemClock),
            faults: Faults::default(),
        }
    }
}

impl DefaultRunnerBuilder {
    /// A builder without a database URL yet (upstream's form; set it with
    /// [`database_url`](Self::database_url)).
    pub fn new() -> Self {
        Self::default()
    }

    /// The database URL (SQLite or PostgreSQL).
    pub fn database_url(mut self, url: &str) -> Self {
        self.url = Some(url.to_owned());
        self
    }

    /// Replaces the configuration.
    pub fn config(mut self, config: DefaultRunnerConfig) -> Self {
        self.config = config;
        self
    }

    /// [`config`](Self::config), by upstream's name.
    pub fn with_config(self, config: DefaultRunnerConfig) -> Self {
        self.config(config)
    }

    /// Keeps the tables in a PostgreSQL schema (a tenant).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.config.schema = Some(schema.into());
        self
    }

    /// Registers a workflow with this runner (in addition to those `#[workflow]` registered;
    /// one with the same name replaces the registered one). Two workflows of one name given
    /// here are refused by [`build`](Self::build).
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        self.workflows.push(workflow);
        self
    }

    /// Registers an event trigger with this runner (in addition to those `#[trigger]`
    /// registered; one with the same name replaces the registered one). The runner polls it when
    /// it has the trigger's workflow.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.triggers.push(trigger);
        self
    }

    /// Sets the clock the runner reads for every time it uses: leases, retry waits, recovery,
    /// cron fire times and the times it records (default: the system clock). A
    /// [`ManualClock`](crate::clock::ManualClock) makes them testable without waiting.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Arms fault injection for this runner (tests only: needs the `failpoints` feature).
    #[cfg(feature = "failpoints")]
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Validates the settings, connects (migrating the database), records the workflows in
    /// `workflow_registry` and starts the services.
    pub async fn build(self) -> Result<DefaultRunner, Error> {
        let DefaultRunnerBuilder { url, config, workflows, triggers, clock, faults } = self;
        let url = url.ok_or_else(|| Error::InvalidSetting {
            setting: "database_url",
            reason: "is not set: pass it to DefaultRunner::builder or DefaultRunnerBuilder::database_url".to_owned(),
        })?;
        config.validate()?;
        let mut given = std::collections::HashSet::new();
        if let Some(twice) = workflows.iter().find(|w| !given.insert(w.name())) {
            return Err(Error::InvalidSetting {
                setting: "workflow",
                reason: format!(
                    "two workflows named `{}` were given to the builder; the second would silently replace the first",
                    twice.name()
                ),
            });
        }
        let db_config =
            DatabaseConfig { pool_size: config.pool_size, schema: config.schema.clone(), ..Default::default() };
        let db = tokio::task::spawn_blocking(move || Database::connect_with(&url, db_config))
            .await
            .map_err(|e| crate::database::Error::Task(e.to_string()))??;
        let mut by_name = HashMap::new();
        for wf in crate::workflow::registered().into_iter().chain(workflows) {
            let (now, known) = (clock.now(), wf.clone());
            db.run_with(move |c| crate::ops::workflows::record(c, &known, now)).await?;
            by_name.insert(wf.name().to_owned(), wf);
        }
        let mut triggers_by_name = BTreeMap::new();
        for t in crate::trigger::registered().into_iter().chain(triggers) {
            triggers_by_name.insert(t.name().to_owned(), t);
        }
        let (ours, others): (Vec<Trigger>, Vec<Trigger>) =
            triggers_by_name.into_values().partition(|t| by_name.contains_key(t.workflow()));
        for t in others {
            tracing::debug!(
                trigger = t.name(),
                workflow = t.workflow(),
                "trigger not polled here: this runner does not have its workflow"
            );
        }
        let runner_name = config.runner_name.clone().unwrap_or_else(default_runner_name);
        let (name, now) = (runner_name.clone(), UniversalTimestamp::from(clock.now()));
        let catalog = Catalog::new(by_name, ours);
        let contents = catalog.now();
        let versions = contents.runner_versions();
        db.run_with(move |c| crate::ops::liveness::register_runner(c, &name, &Host::this(), &versions, now)).await?;
        let engine = Arc::new(Engine::new(db, config, runner_name, catalog, clock, faults));
        services::triggers::register(&engine.store, &contents.triggers, &*engine.clock).await?;
        let (declared, offered, now) =
            (crate::trigger::cron_triggers(), contents.workflow_names.clone(), engine.clock.now());
        engine.store.db.run_with(move |c| crate::ops::schedules::declare_all(c, &declared, &offered, now)).await?;
        let services = services::start(&engine);
        tracing::info!(runner = %engine.settings.runner_name, database = %engine.store.db.url(), "runner started");
        Ok(DefaultRunner { engine, services: Mutex::new(Some(services)) })
    }
}

fn default_runner_name() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}-{}", host_name(), std::process::id(), &suffix[..8])
}

impl DefaultRunner {
    /// A builder for `url` with the default configuration and no workflows.
    pub fn builder(url: impl Into<String>) -> DefaultRunnerBuilder {
        DefaultRunnerBuilder { url: Some(url.into()), ..DefaultRunnerBuilder::default() }
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

    /// Everything about one run: tasks, attempts, errors, recovery events, and, while it is
    /// unfinished, why it waits.
    pub async fn execution_details(&self, id: PipelineExecutionId) -> Result<RunDetails, Error> {
        let now = self.engine.clock.now();
        let details = self.engine.store.db.run_with(move |c| crate::ops::runs::details(c, id, now)).await?;
        details.ok_or(Error::ExecutionNotFound(id))
    }

    /// The name this runner claims tasks under.
    pub fn runner_name(&self) -> &str {
        &self.engine.settings.runner_name
    }

    /// The database this runner uses.
    pub fn database(&self) -> &Database {
        &self.engine.store.db
    }

    /// Stops the runner: claims nothing more, lets running tasks finish until `shutdown_timeout`,
    /// then cancels the rest and gives their tasks back (another runner may take them at once;
    /// each is recorded as a recovery event and keeps its attempt). Task code that does not stop
    /// when cancelled keeps its claim until the lease lapses. Returns once every service stopped.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(Services { mut claim_loop, background }) = services else { return Ok(()) };
        self.engine.shutdown.stop_claiming.send_replace(true);
        self.engine.signals.work_available.notify_one();
        if tokio::time::timeout(self.engine.settings.config.shutdown_timeout, &mut claim_loop).await.is_err() {
            tracing::warn!("shutdown deadline reached; cancelling the tasks still running");
            self.engine.shutdown.cancel_attempts.send_replace(true);
            // Cancelled attempts end within their grace; recording their outcomes may not, if the
            // database is unreachable: then the services stop and the outcomes are given up
            // (their tasks run again after their leases lapse).
            if tokio::time::timeout(RECORDING_GRACE, &mut claim_loop).await.is_err() {
                tracing::warn!("outcomes could not be recorded before shutdown; their tasks run again elsewhere");
                self.engine.shutdown.stop_services.send_replace(true);
                let _ = claim_loop.await;
            }
        }
        self.engine.shutdown.stop_services.send_replace(true);
        for service in background {
            let _ = service.await;
        }
        let name = self.engine.settings.runner_name.clone();
        if let Err(e) = self.engine.store.db.run(move |c| crate::ops::liveness::deregister(c, &name)).await {
            tracing::warn!(error = %e, "could not remove this runner from `runners`; its row goes stale");
        }
        tracing::info!(runner = %self.engine.settings.runner_name, "runner stopped");
        Ok(())
    }
}

impl Drop for DefaultRunner {
    /// A runner dropped without [`DefaultRunner::shutdown`] stops at once: its services are told
    /// to stop and its running attempts are cancelled (their claims lapse or are given back).
    fn drop(&mut self) {
        if self.services.get_mut().unwrap_or_else(PoisonError::into_inner).take().is_some() {
            self.engine.shutdown.stop_claiming.send_replace(true);
            self.engine.shutdown.cancel_attempts.send_replace(true);
            self.engine.shutdown.stop_services.send_replace(true);
        }
    }
}

impl WorkflowExecutor for DefaultRunner {
    /// Starts a pipeline of `workflow` with `context` and returns a handle at once.
    async fn execute_async(&self, workflow: &str, context: Context<Value>) -> Result<ExecutionHandle, Error> {
        if self.engine.shutdown.is_shutting_down() {
            return Err(Error::ShutDown);
        }
        let wf = self
            .engine
            .catalog
            .now()
            .offered(workflow)
            .cloned()
            .ok_or_else(|| Error::UnknownWorkflow(workflow.to_owned()))?;
        let id = PipelineExecutionId::new();
        let (e, wf) = (self.engine.clone(), wf.clone());
        let ended = self
            .engine
            .store
            .persist("create a pipeline", Persistence::BRIEF, move |c, try_no| {
                // An earlier try may have committed before its answer was lost: never create twice.
                if try_no > 0 && crate::ops::runs::status(c, id)?.is_some() {
                    return Ok(None);
                }
                e.store.faults.check(FaultPoint::CreatePipeline, FaultTiming::Before)?;
                let now = crate::engine::stamp(&*e.clock);
                let ended = write_transaction(c, |c| {
                    let ended = scheduler::create_pipeline(c, &e.store.faults, id, &wf, &context, now)?;
                    if ended.is_none() {
                        e.store.announce_work(c)?;
                    }
                    Ok::<_, Error>(ended)
                })?;
                e.store.faults.check(FaultPoint::CreatePipeline, FaultTiming::AfterCommit)?;
                Ok(ended)
            })
            .await?;
        tracing::debug!(pipeline = %id, workflow, "pipeline created");
        if let Some(result) = ended {
            self.engine.runs.pipeline_finished(id, Some(result));
        }
        self.engine.signals.work_available.notify_one();
        Ok(ExecutionHandle::new(self.engine.clone(), id))
    }

    /// Pipelines matching `filter`, newest first.
    async fn list_executions(&self, filter: PipelineFilter) -> Result<Vec<PipelineExecution>, Error> {
        Ok(self.engine.store.db.run_with(move |c| crate::ops::runs::list(c, &filter)).await?.runs)
    }

    /// A handle on an existing pipeline (started by another call, a cron schedule or another
    /// process), to wait for it, look at its status or cancel it.
    async fn attach(&self, id: PipelineExecutionId) -> Result<ExecutionHandle, Error> {
        let exists = self.engine.store.db.run_with(move |c| crate::ops::runs::status(c, id)).await?.is_some();
        if !exists {
            return Err(Error::ExecutionNotFound(id));
        }
        Ok(ExecutionHandle::new(self.engine.clone(), id))
    }

    async fn execute(&self, workflow: &str, context: Context<Value>) -> Result<ExecutionResult, Error> {
        self.execute_async(workflow, context).await?.wait_for_completion().await
    }

    async fn get_execution_status(&self, id: PipelineExecutionId) -> Result<PipelineStatus, Error> {
        self.engine
            .store
            .db
            .run_with(move |c| crate::ops::runs::status(c, id))
            .await?
            .ok_or(Error::ExecutionNotFound(id))
    }

    async fn cancel(&self, id: PipelineExecutionId) -> Result<bool, Error> {
        cancel(&self.engine, id).await
    }

    async fn pause(&self, id: PipelineExecutionId) -> Result<bool, Error> {
        let now = self.engine.clock.now();
        Ok(self.engine.store.db.run_with(move |c| crate::ops::runs::pause(c, id, now)).await?.is_ok())
    }

    /// Resumes a paused pipeline and, in the same transaction, settles it: everything may have
    /// finished while it was paused.
    async fn resume(&self, id: PipelineExecutionId) -> Result<bool, Error> {
        let (now, faults) = (self.engine.clock.now(), self.engine.store.faults.clone());
        let resumed =
            self.engine.store.db.run_with(move |c| crate::ops::runs::resume_with(c, id, now, &faults)).await?;
        let Ok(resumed) = resumed else { return Ok(false) };
        if let Some(result) = resumed.ended {
            self.engine.runs.pipeline_finished(id, Some(result));
        }
        self.engine.signals.work_available.notify_one();
        Ok(true)
    }
}
