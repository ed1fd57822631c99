//! The parts a runner's services share, each holding one kind of state, so a service's
//! signature says what it may touch:
//!
//! - [`Store`]: the database, the faults a test armed, the retry policy for a database step, and
//!   work announcements;
//! - [`Catalog`]: the workflows and event triggers this runner has, and their versions;
//! - [`Claims`]: the task claims this runner holds, and claim stamps;
//! - [`Runs`]: the facts of the runs it works on, and who waits for their end;
//! - [`Signals`]: the wake-ups between services;
//! - [`Shutdown`]: the three phases of a stop;
//! - [`Settings`]: the runner's configuration and name;
//! - the [`Clock`] every engine time is read from and every engine timer waits on.
//!
//! [`Engine`] holds them all for the runner's facade (`DefaultRunner`, its handles); the services
//! take only the parts they use. Below the services: it imports none of them.

mod catalog;
mod claims;
mod host;
mod runs;
mod signals;
mod store;

use std::sync::Arc;

pub(crate) use catalog::{Catalog, Contents};
pub(crate) use claims::Claims;
pub(crate) use host::{host_name, Host};
pub(crate) use runs::{input_context, merge_outputs, Ending, PipelineInfo, Runs};
pub(crate) use signals::{Shutdown, Signals};
pub(crate) use store::{Persistence, Store};

use crate::clock::Clock;
use crate::config::DefaultRunnerConfig;
use crate::database::UniversalTimestamp;

/// The runner's configuration and the name it claims tasks under.
pub(crate) struct Settings {
    pub(crate) config: DefaultRunnerConfig,
    pub(crate) runner_name: String,
}

/// Every part of a runner, for its facade.
pub(crate) struct Engine {
    pub(crate) store: Arc<Store>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) claims: Arc<Claims>,
    pub(crate) runs: Arc<Runs>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) shutdown: Arc<Shutdown>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Engine {
    /// A new engine with nothing held and no waiters.
    pub(crate) fn new(
        db: crate::database::Database,
        config: DefaultRunnerConfig,
        runner_name: String,
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        faults: crate::faults::Faults,
    ) -> Self {
        let shutdown = Arc::new(Shutdown::new());
        let catalog = Arc::new(catalog);
        Self {
            store: Arc::new(Store::new(db, faults, shutdown.stop_services.subscribe(), &runner_name)),
            runs: Arc::new(Runs::new(catalog.clone())),
            catalog,
            claims: Arc::new(Claims::new(clock.clone())),
            signals: Arc::new(Signals::default()),
            shutdown,
            settings: Arc::new(Settings { config, runner_name }),
            clock,
        }
    }
}

/// The engine's "now" as stored: the clock's time to the microsecond.
pub(crate) fn stamp(clock: &dyn Clock) -> UniversalTimestamp {
    UniversalTimestamp::from(clock.now())
}
