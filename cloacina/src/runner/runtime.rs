//! Upstream Cloacina's way to wire event triggers by hand: `runner.runtime().get_trigger(name)` and
//! `runner.unified_scheduler().await` with `register_trigger(trigger, workflow)`,
//! `enable_trigger` and `disable_trigger`. Here a runner already polls every `#[trigger]` whose
//! workflow it has, so these are thin views over what it has; registering is idempotent, and
//! binding a trigger to another workflow than its `on` is refused (the binding is part of the
//! trigger's definition, shared by every runner that polls it).

use std::sync::Arc;

use super::DefaultRunner;
use crate::engine::{Contents, Engine};
use crate::trigger::Trigger;
use crate::Error;

/// What a runner has at one moment: its workflows and the event triggers it polls (a snapshot;
/// a daemon loading a package later does not change it).
pub struct Runtime {
    contents: Arc<Contents>,
}

impl Runtime {
    /// The event trigger called `name`, if this runner polls it.
    pub fn get_trigger(&self, name: &str) -> Option<Arc<Trigger>> {
        self.contents.triggers.iter().find(|t| t.name() == name).cloned().map(Arc::new)
    }

    /// The names of the triggers this runner polls, sorted.
    pub fn trigger_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.contents.triggers.iter().map(|t| t.name().to_owned()).collect();
        names.sort();
        names
    }

    /// The workflows new runs can start here, sorted.
    pub fn workflow_names(&self) -> Vec<String> {
        self.contents.workflow_names.to_vec()
    }
}

/// The trigger scheduler of a runner (upstream's name): present when
/// `DefaultRunnerConfig::enable_trigger_scheduling` is on.
pub struct UnifiedScheduler {
    engine: Arc<Engine>,
}

impl UnifiedScheduler {
    /// Makes sure `trigger` is recorded and polled for `workflow`. The trigger must be one this
    /// runner polls and `workflow` the one it names (`#[trigger(on = …)]`); anything else is a
    /// clear error and changes nothing.
    pub async fn register_trigger(&self, trigger: &Trigger, workflow: &str) -> Result<(), Error> {
        let refuse = |reason: String| Err(Error::InvalidSetting { setting: "trigger", reason });
        if trigger.workflow() != workflow {
            return refuse(format!(
                "`{}` starts `{}` (its `on`); it cannot be registered for `{workflow}`: declare another trigger for that workflow",
                trigger.name(),
                trigger.workflow()
            ));
        }
        let contents = self.engine.catalog.now();
        let Some(polled) = contents.triggers.iter().find(|t| t.name() == trigger.name()) else {
            return refuse(format!(
                "`{}` is not polled by this runner: it has no workflow `{workflow}` or the trigger is not registered",
                trigger.name()
            ));
        };
        crate::services::triggers::register(&self.engine.store, std::slice::from_ref(polled), &*self.engine.clock).await
    }

    /// Resumes the trigger called `name` for every runner.
    pub async fn enable_trigger(&self, name: &str) -> Result<(), Error> {
        self.set_enabled(name, true).await
    }

    /// Pauses the trigger called `name` for every runner.
    pub async fn disable_trigger(&self, name: &str) -> Result<(), Error> {
        self.set_enabled(name, false).await
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), Error> {
        let (key, now) = (name.to_owned(), self.engine.clock.now());
        self.engine.store.db.run_with(move |c| crate::ops::triggers::set_enabled(c, &key, enabled, now)).await
    }
}

impl DefaultRunner {
    /// What this runner has now: its workflows and the triggers it polls.
    pub fn runtime(&self) -> Runtime {
        Runtime { contents: self.engine.catalog.now() }
    }

    /// The trigger scheduler, or `None` when trigger scheduling is off in the configuration.
    pub async fn unified_scheduler(&self) -> Option<UnifiedScheduler> {
        self.engine
            .settings
            .config
            .enable_trigger_scheduling
            .then(|| UnifiedScheduler { engine: Arc::clone(&self.engine) })
    }
}

/// Wakes a runner's package daemon: [`DefaultRunner::packages_waker`].
#[cfg(feature = "packages")]
#[derive(Clone)]
pub struct PackagesWaker(pub(super) Arc<crate::engine::Signals>);

#[cfg(feature = "packages")]
impl PackagesWaker {
    /// The stored packages changed: the daemon looks now rather than at its next poll.
    pub fn wake(&self) {
        self.0.packages_changed.notify_one();
    }
}

#[cfg(feature = "packages")]
impl std::fmt::Debug for PackagesWaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackagesWaker")
    }
}
