//! The retention service (with `DefaultRunnerConfig::retention` set): every
//! `retention_interval` it deletes finished runs that ended longer ago than the retention with
//! `ops::runs::prune` (the loop `cloacinactl runs prune` runs too), in batches of [`BATCH`] runs,
//! each one short transaction, `PRUNE_PAUSE` apart so runners' own writes go between them.
//! Several runners may run it: a batch deletes only what is still there.

use std::sync::Arc;

use crate::engine::Engine;
use crate::ops::runs::{self, PruneFilter};

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
        let stopping = stop.clone();
        // Batches on a blocking thread, PRUNE_PAUSE apart, until done or the services stop.
        let between = move || {
            std::thread::sleep(runs::PRUNE_PAUSE);
            !*stopping.borrow()
        };
        let deleted = match engine.db.run_with(move |c| runs::prune(c, &filter, BATCH, between)).await {
            Ok((deleted, _)) => deleted,
            Err(e) => {
                tracing::warn!(error = %e, "retention: deleting old runs failed; trying again next interval");
                0
            }
        };
        if deleted > 0 {
            tracing::info!(deleted, %ended_before, "retention: deleted finished runs");
        }
    }
}
