//! Registry refresh: keeps this runner's workflow versions marked seen in `workflow_registry` and
//! this runner's row in `runners` fresh (which is what makes its versions live), every
//! `workflow_registry::REFRESH_INTERVAL` by the runner's clock.

use std::sync::Arc;

use crate::clock::{Clock, Ticker};
use crate::dal::{runners, workflow_registry};
use crate::engine::{stamp, Catalog, Host, Settings, Shutdown, Store};
use crate::ops::liveness::register_runner;

/// The service loop.
pub(crate) async fn run(
    store: Arc<Store>,
    catalog: Arc<Catalog>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    shutdown: Arc<Shutdown>,
) {
    let mut stop = shutdown.stop_services.subscribe();
    let mut tick = Ticker::after_one_period(clock.clone(), workflow_registry::REFRESH_INTERVAL);
    while tick.tick(&mut stop).await {
        let (contents, now, name) = (catalog.now(), stamp(&*clock), settings.runner_name.clone());
        let touched = store
            .db
            .run_with(move |c| {
                workflow_registry::touch(c, &contents.versions, now)?;
                if !runners::touch(c, &name, now)? {
                    // Removed meanwhile (a copy into this database, an operator): say so again.
                    register_runner(c, &name, &Host::this(), &contents.runner_versions(), now)?;
                }
                Ok::<_, crate::Error>(())
            })
            .await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, "refreshing the workflow registry failed; trying again at the next refresh");
        }
    }
}
