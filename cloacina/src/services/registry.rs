//! Registry refresh: keeps this runner's workflow versions marked live in `workflow_registry`, so
//! pipelines of those versions are not reported as waiting for a runner, and this runner's row in
//! `runners` fresh.

use std::sync::Arc;

use crate::dal::{runners, workflow_registry};
use crate::engine::{next_tick, Engine, Host};
use crate::ops::liveness::register_runner;

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
            .run_with(move |c| {
                workflow_registry::touch(c, &versions, now)?;
                if !runners::touch(c, &name, now)? {
                    // Removed meanwhile (a copy into this database, an operator): say so again.
                    register_runner(c, &name, &Host::this(), &versions, now)?;
                }
                Ok::<_, crate::Error>(())
            })
            .await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, "refreshing the workflow registry failed; trying again at the next refresh");
        }
    }
}
