//! Registry refresh: keeps this runner's workflow versions marked live in `workflow_registry`, so
//! pipelines of those versions are not reported as waiting for a runner, and this runner's row in
//! `runners` fresh.

use std::sync::Arc;

use crate::dal::{runners, workflow_registry};
use crate::engine::{next_tick, Engine, Host};

/// The service loop.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut stop = engine.stop_services.subscribe();
    let period = workflow_registry::REFRESH_INTERVAL;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &mut stop).await {
        let (versions, now, name) = (engine.versions.clone(), engine.now(), engine.runner_name.clone());
        let touched = engine
            .db
            .run(move |c| {
                workflow_registry::touch(c, &versions, now)?;
                if !runners::touch(c, &name, now)? {
                    // Removed meanwhile (a copy into this database, an operator): say so again.
                    let host = Host::this();
                    runners::register(c, &name, &host.id, &host.name, std::process::id(), now)?;
                }
                Ok::<_, crate::database::Error>(())
            })
            .await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, "refreshing the workflow registry failed; trying again at the next refresh");
        }
    }
}
