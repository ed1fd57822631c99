//! Registry refresh: keeps this runner's workflow versions marked live in `workflow_registry`, so
//! pipelines of those versions are not reported as waiting for a runner.

use std::sync::Arc;

use crate::dal::workflow_registry;
use crate::engine::{next_tick, Engine};

/// The service loop.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut stop = engine.stop_services.subscribe();
    let period = workflow_registry::REFRESH_INTERVAL;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &mut stop).await {
        let (versions, now) = (engine.versions.clone(), engine.now());
        let touched = engine.db.run(move |c| workflow_registry::touch(c, &versions, now)).await;
        if let Err(e) = touched {
            tracing::warn!(error = %e, "refreshing the workflow registry failed; trying again at the next refresh");
        }
    }
}
