//! The end watch: tells this process's waiters about pipelines that ended elsewhere.
//!
//! A pipeline this runner ends is handed to its waiters at once, with its result. One that another
//! process ends (or cancels) is found here: every poll interval, one query asks which of the
//! pipelines waited for in this process are terminal, and their waiters read the result. One
//! statement per interval, however many pipelines are waited for (not one per waiter).

use std::sync::Arc;

use crate::dal::pipeline_executions as pipelines;
use crate::engine::{next_tick, Engine};

/// Pipelines asked about per statement.
const CHUNK: usize = 500;

/// The service loop.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut stop = engine.stop_services.subscribe();
    let mut tick = tokio::time::interval(engine.config.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &mut stop).await {
        let waited = engine.waited_pipelines();
        for chunk in waited.chunks(CHUNK) {
            let ids = chunk.to_vec();
            match engine.db.run(move |c| pipelines::terminal_among(c, &ids)).await {
                Ok(ended) => {
                    for id in ended {
                        engine.pipeline_finished(id, None);
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
