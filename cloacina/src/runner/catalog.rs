//! Changing what a running [`DefaultRunner`] has: a daemon adds the workflows of a package it
//! loaded ([`DefaultRunner::add_workflows`]), withdraws those of a package that was replaced or
//! removed ([`DefaultRunner::withdraw_workflows`]), and lets go of versions whose runs have all
//! ended ([`DefaultRunner::release_finished_versions`]). A withdrawn version keeps running the
//! runs that started with it; only new runs (cron, triggers, `execute`, `runs start`) move on.

use super::{DefaultRunner, WorkflowSet};
use crate::engine::stamp;
use crate::faults::{FaultPoint, FaultTiming};
use crate::ops::{liveness, schedules, workflows};
use crate::Error;

impl DefaultRunner {
    /// Adds `set` while the runner runs: records each workflow in the registry, starts new runs
    /// of its name at this version from now on (the version offered before keeps running the runs
    /// that started with it), records and polls the event triggers, and creates the declared cron
    /// schedules that do not exist yet. The runner's row lists the new versions before this
    /// returns, so a run started right after is not reported as waiting.
    pub async fn add_workflows(&self, set: WorkflowSet) -> Result<(), Error> {
        let WorkflowSet { workflows, triggers, cron_triggers } = set;
        let engine = &self.engine;
        for wf in &workflows {
            let (wf, now, faults) = (wf.clone(), engine.clock.now(), engine.store.faults.clone());
            let record = move |c: &mut crate::database::AnyConnection| {
                faults.check(FaultPoint::OfferWorkflows, FaultTiming::Before)?;
                workflows::record(c, &wf, now)
            };
            engine.store.db.run_with(record).await?;
        }
        crate::services::triggers::register(&engine.store, &triggers, &*engine.clock).await?;
        let contents = engine.catalog.offer(&workflows, &triggers);
        self.record_versions(contents.runner_versions()).await?;
        let (declared, offered) = (cron_triggers, contents.workflow_names.clone());
        let now = engine.clock.now();
        engine.store.db.run_with(move |c| schedules::declare_all(c, &declared, &offered, now)).await?;
        engine.signals.schedules_changed.notify_one();
        engine.signals.work_available.notify_one();
        Ok(())
    }

    /// Completes when a package was uploaded or deleted somewhere (heard on PostgreSQL; never on
    /// SQLite).
    #[cfg(feature = "packages")]
    pub(crate) async fn packages_changed(&self) {
        self.engine.signals.packages_changed.notified().await
    }

    /// A handle that wakes this runner's package daemon (one following the stored packages)
    /// from anywhere in the process: what a server that records uploads in the same process
    /// tells it, where no database announcement carries the news (SQLite).
    #[cfg(feature = "packages")]
    pub fn packages_waker(&self) -> super::runtime::PackagesWaker {
        super::runtime::PackagesWaker(self.engine.signals.clone())
    }

    /// The faults armed for this runner (the daemon's package steps check them too).
    #[cfg(feature = "packages")]
    pub(crate) fn faults(&self) -> &crate::faults::Faults {
        &self.engine.store.faults
    }

    /// Stops starting new runs of the workflows `names` (their event triggers stop too; their
    /// cron schedules fire only on runners that still offer them). Runs that started with their
    /// versions keep running here until they end.
    pub async fn withdraw_workflows(&self, names: &[String]) -> Result<(), Error> {
        let contents = self.engine.catalog.withdraw(names);
        self.record_versions(contents.runner_versions()).await
    }

    /// Lets go of the versions this runner no longer offers whose runs have all ended, and
    /// returns them.
    pub async fn release_finished_versions(&self) -> Result<Vec<String>, Error> {
        let retired = self.engine.catalog.now().runner_versions().retired;
        if retired.is_empty() {
            return Ok(Vec::new());
        }
        let asked = retired.clone();
        let in_use = self.engine.store.db.run_with(move |c| workflows::versions_in_use(c, &asked)).await?;
        let done: Vec<String> = retired.into_iter().filter(|v| !in_use.contains(v)).collect();
        let mut contents = self.engine.catalog.now();
        for version in &done {
            contents = self.engine.catalog.forget(version);
        }
        if !done.is_empty() {
            self.record_versions(contents.runner_versions()).await?;
        }
        Ok(done)
    }

    /// Waits until no run of a version this runner has (or of `also`) is unfinished (Pending,
    /// Running or Paused), checking every `interval`: what `cloacinactl daemon --once` and a
    /// withdrawn Python package's worker wait for before they stop. A paused run is unfinished:
    /// pausing one makes this wait until it is resumed.
    pub async fn finish_unfinished_runs(&self, interval: std::time::Duration, also: &[String]) -> Result<(), Error> {
        loop {
            let versions = self.engine.catalog.now().runner_versions();
            let all: Vec<String> =
                versions.offered.into_iter().chain(versions.retired).chain(also.iter().cloned()).collect();
            if all.is_empty() {
                return Ok(());
            }
            let in_use = self.engine.store.db.run_with(move |c| workflows::versions_in_use(c, &all)).await?;
            if in_use.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// The time now, by the runner's clock.
    #[cfg(feature = "packages")]
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.engine.clock.now()
    }

    async fn record_versions(&self, versions: liveness::Versions) -> Result<(), Error> {
        let (name, now) = (self.engine.settings.runner_name.clone(), stamp(&*self.engine.clock));
        self.engine.store.db.run_with(move |c| liveness::set_versions(c, &name, &versions, now)).await
    }
}
