//! [`Catalog`]: the workflows and event triggers this runner has, and their versions. It changes
//! while the runner runs when a daemon loads, replaces or removes a package: readers take a
//! [`Contents`] snapshot (an `Arc`, cheap), changes swap in a new one and wake the services that
//! follow it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

use crate::dal::runners::Versions;
use crate::trigger::Trigger;
use crate::workflow::Workflow;

/// What the runner has at one moment.
#[derive(Default)]
pub(crate) struct Contents {
    /// Every version it can run, by version (a version names one workflow).
    by_version: HashMap<String, Workflow>,
    /// The version of each workflow that new runs start at (cron, triggers, `execute`).
    offered: BTreeMap<String, String>,
    /// Every version in `by_version`: the claim takes only their tasks.
    pub(crate) versions: Arc<Vec<String>>,
    /// The names in `offered`: the cron service fires only their schedules.
    pub(crate) workflow_names: Arc<Vec<String>>,
    /// The event triggers this runner polls (those whose workflow it offers).
    pub(crate) triggers: Arc<Vec<Trigger>>,
}

impl Contents {
    fn new(by_version: HashMap<String, Workflow>, offered: BTreeMap<String, String>, triggers: Vec<Trigger>) -> Self {
        let triggers = triggers.into_iter().filter(|t| offered.contains_key(t.workflow())).collect();
        Self {
            versions: Arc::new(by_version.keys().cloned().collect()),
            workflow_names: Arc::new(offered.keys().cloned().collect()),
            by_version,
            offered,
            triggers: Arc::new(triggers),
        }
    }

    /// The workflow `name` at `version`, if this runner has exactly that version.
    pub(crate) fn workflow(&self, name: &str, version: &str) -> Option<&Workflow> {
        self.by_version.get(version).filter(|w| w.name() == name)
    }

    /// The version of `name` new runs start at, if this runner offers it.
    pub(crate) fn offered(&self, name: &str) -> Option<&Workflow> {
        self.offered.get(name).and_then(|v| self.by_version.get(v))
    }

    /// The versions as the runner's row records them.
    pub(crate) fn runner_versions(&self) -> Versions {
        let offered: Vec<String> = self.offered.values().cloned().collect();
        let retired = self.by_version.keys().filter(|v| !offered.contains(v)).cloned().collect();
        Versions { offered, retired }
    }
}

/// The workflows and triggers this runner has.
pub(crate) struct Catalog {
    current: RwLock<Arc<Contents>>,
    /// Bumped on every change (the trigger service follows it).
    changed: watch::Sender<u64>,
}

impl Catalog {
    /// A catalog that offers `workflows` (one per name) and polls the `triggers` whose workflow
    /// is among them.
    pub(crate) fn new(workflows: HashMap<String, Workflow>, triggers: Vec<Trigger>) -> Self {
        let offered = workflows.values().map(|w| (w.name().to_owned(), w.version().to_owned())).collect();
        let by_version = workflows.into_values().map(|w| (w.version().to_owned(), w)).collect();
        Self {
            current: RwLock::new(Arc::new(Contents::new(by_version, offered, triggers))),
            changed: watch::channel(0).0,
        }
    }

    /// What the runner has now.
    pub(crate) fn now(&self) -> Arc<Contents> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Wakes when the catalog changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn change(&self, f: impl FnOnce(&Contents) -> Contents) -> Arc<Contents> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let next = Arc::new(f(&current));
        *current = next.clone();
        self.changed.send_modify(|n| *n += 1);
        next
    }

    /// Offers `workflows` for new runs (replacing the offered version of each name, which stays
    /// runnable for the runs in flight until [`forget`](Self::forget)) and polls `triggers`
    /// (replacing those of the same name).
    pub(crate) fn offer(&self, workflows: &[Workflow], triggers: &[Trigger]) -> Arc<Contents> {
        self.change(|c| {
            let mut by_version = c.by_version.clone();
            let mut offered = c.offered.clone();
            for w in workflows {
                by_version.insert(w.version().to_owned(), w.clone());
                offered.insert(w.name().to_owned(), w.version().to_owned());
            }
            let mut all: BTreeMap<String, Trigger> =
                c.triggers.iter().map(|t| (t.name().to_owned(), t.clone())).collect();
            all.extend(triggers.iter().map(|t| (t.name().to_owned(), t.clone())));
            Contents::new(by_version, offered, all.into_values().collect())
        })
    }

    /// Stops offering the workflows `names` for new runs (their triggers stop with them); their
    /// versions stay runnable for the runs in flight until [`forget`](Self::forget).
    pub(crate) fn withdraw(&self, names: &[String]) -> Arc<Contents> {
        self.change(|c| {
            let mut offered = c.offered.clone();
            offered.retain(|name, _| !names.contains(name));
            Contents::new(c.by_version.clone(), offered, c.triggers.to_vec())
        })
    }

    /// Drops `version` (no run of it is left unfinished), unless it is offered.
    pub(crate) fn forget(&self, version: &str) -> Arc<Contents> {
        self.change(|c| {
            let mut by_version = c.by_version.clone();
            if !c.offered.values().any(|v| v == version) {
                by_version.remove(version);
            }
            Contents::new(by_version, c.offered.clone(), c.triggers.to_vec())
        })
    }
}
