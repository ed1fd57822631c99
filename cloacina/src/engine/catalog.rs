//! [`Catalog`]: the workflows and event triggers this runner has, and their versions.

use std::collections::HashMap;
use std::sync::Arc;

use crate::trigger::Trigger;
use crate::workflow::Workflow;

/// The workflows and triggers this runner has.
pub(crate) struct Catalog {
    pub(crate) workflows: HashMap<String, Workflow>,
    /// The structural version of each workflow in `workflows`: the claim takes only their tasks.
    pub(crate) versions: Arc<Vec<String>>,
    /// The names in `workflows`: the cron service handles only their schedules.
    pub(crate) workflow_names: Arc<Vec<String>>,
    /// The event triggers this runner polls (those whose workflow it has).
    pub(crate) triggers: Arc<Vec<Trigger>>,
}

impl Catalog {
    pub(crate) fn new(workflows: HashMap<String, Workflow>, triggers: Vec<Trigger>) -> Self {
        Self {
            versions: Arc::new(workflows.values().map(|w| w.version().to_owned()).collect()),
            workflow_names: Arc::new(workflows.keys().cloned().collect()),
            workflows,
            triggers: Arc::new(triggers),
        }
    }

    /// The workflow `name` at `version`, if this runner has exactly that version.
    pub(crate) fn workflow(&self, name: &str, version: &str) -> Option<&Workflow> {
        self.workflows.get(name).filter(|w| w.version() == version)
    }
}
