//! [`RunKeeper`]: the parts the services that start or settle runs in the background (cron,
//! event triggers, recovery) share.

use std::sync::Arc;

/// The parts of a service that starts or settles runs in the background (cron, triggers,
/// recovery): the database, the workflows it has, the runs' facts and waiters, the wake-ups, the
/// settings and the clock.
#[derive(Clone)]
pub(crate) struct RunKeeper {
    pub(super) store: Arc<crate::engine::Store>,
    pub(super) catalog: Arc<crate::engine::Catalog>,
    pub(super) runs: Arc<crate::engine::Runs>,
    pub(super) signals: Arc<crate::engine::Signals>,
    pub(super) settings: Arc<crate::engine::Settings>,
    pub(super) clock: Arc<dyn crate::clock::Clock>,
}

impl RunKeeper {
    /// The parts of `engine` it uses.
    pub(crate) fn of(engine: &crate::engine::Engine) -> Self {
        Self {
            store: engine.store.clone(),
            catalog: engine.catalog.clone(),
            runs: engine.runs.clone(),
            signals: engine.signals.clone(),
            settings: engine.settings.clone(),
            clock: engine.clock.clone(),
        }
    }
}
