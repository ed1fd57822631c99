//! The end watch: tells this process's waiters about pipelines that ended elsewhere.
//!
//! A pipeline this runner ends is handed to its waiters at once, with its result. One that another
//! process ends (or cancels) is found here: every poll interval, one query asks which of the
//! pipelines waited for in this process are terminal, and their waiters read the result. One
//! statement per interval, however many pipelines are waited for (not one per waiter).

use std::sync::Arc;

use crate::dal::pipeline_executions as pipelines;
use crate::engine::{Runs, Settings, Shutdown, Store};

/// Pipelines asked about per statement.
const CHUNK: usize = 500;

/// The service loop.
pub(crate) async fn run(store: Arc<Store>, runs: Arc<Runs>, settings: Arc<Settings>, shutdown: Arc<Shutdown>) {
    let mut stop = shutdown.stop_services.subscribe();
    // Real time: this polls the database for ends other processes recorded.
    let mut tick = tokio::time::interval(settings.config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &mut stop).await {
        let waited = runs.waited_pipelines();
        for chunk in waited.chunks(CHUNK) {
            let ids = chunk.to_vec();
            match store.db.run(move |c| pipelines::terminal_among(c, &ids)).await {
                Ok(ended) => {
                    for id in ended {
                        runs.pipeline_finished(id, None);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "looking for pipelines ended elsewhere failed; trying again next poll");
                    break;
                }
            }
        }
    }
}

/// Waits for the next tick of `interval`; false once the services are told to stop.
async fn next_tick(interval: &mut tokio::time::Interval, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let ticked = tokio::select! {
        _ = interval.tick() => true,
        _ = stop.wait_for(|s| *s) => false,
    };
    ticked && !*stop.borrow()
}
