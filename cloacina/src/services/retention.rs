//! The retention service (with `DefaultRunnerConfig::retention` set): every
//! `retention_interval` it deletes finished runs that ended longer ago than the retention, in
//! batches of [`BATCH`] runs, each one short transaction (`pipeline_executions::prune_batch`),
//! pausing `ops::PRUNE_PAUSE` between batches so runners' own writes go between them. Several
//! runners may run it: a batch deletes only what is still there.

use std::sync::Arc;

use crate::dal::pipeline_executions::{self as pipelines, PruneFilter};
use crate::engine::Engine;

/// Runs per batch: one transaction each.
const BATCH: u32 = 50;

pub(crate) async fn run(engine: Arc<Engine>) {
    let Some(keep) = engine.config.retention else { return };
    let mut stop = engine.stop_services.subscribe();
    loop {
        let next =
            engine.clock.now() + chrono::Duration::from_std(engine.config.retention_interval).unwrap_or_default();
        tokio::select! {
            _ = engine.sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let ended_before = engine.clock.now() - chrono::Duration::from_std(keep).unwrap_or_default();
        let filter = PruneFilter { ended_before, statuses: Vec::new() };
        let mut deleted = 0usize;
        loop {
            let f = filter.clone();
            match engine.db.run(move |c| pipelines::prune_batch(c, &f, BATCH)).await {
                Ok(0) => break,
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(error = %e, "retention: deleting old runs failed; trying again next interval");
                    break;
                }
            }
            if *stop.borrow() {
                return;
            }
            tokio::time::sleep(crate::ops::PRUNE_PAUSE).await;
        }
        if deleted > 0 {
            tracing::info!(deleted, %ended_before, "retention: deleted finished runs");
        }
    }
}
