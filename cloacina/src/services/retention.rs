//! The retention service (with `DefaultRunnerConfig::retention` set): every
//! `retention_interval` it deletes finished runs that ended longer ago than the retention with
//! `ops::runs::prune` (the loop `cloacinactl runs prune` runs too), in batches of [`BATCH`] runs,
//! each one short transaction, `PRUNE_PAUSE` apart so runners' own writes go between them.
//! Several runners may run it: a batch deletes only what is still there.

use std::sync::Arc;

use crate::clock::{Clock, Ticker};
use crate::engine::{Settings, Shutdown, Store};
use crate::ops::runs::{self, PruneFilter};

/// Runs per batch: one transaction each.
const BATCH: u32 = 50;

pub(crate) async fn run(store: Arc<Store>, settings: Arc<Settings>, clock: Arc<dyn Clock>, shutdown: Arc<Shutdown>) {
    let Some(keep) = settings.config.retention else { return };
    let mut stop = shutdown.stop_services.subscribe();
    let mut tick = Ticker::after_one_period(clock.clone(), settings.config.retention_interval);
    while tick.tick(&mut stop).await {
        let ended_before = clock.now() - chrono::Duration::from_std(keep).unwrap_or_default();
        let filter = PruneFilter { ended_before, statuses: Vec::new() };
        let stopping = stop.clone();
        // Batches on a blocking thread, PRUNE_PAUSE apart, until done or the services stop.
        let between = move || {
            std::thread::sleep(runs::PRUNE_PAUSE);
            !*stopping.borrow()
        };
        let deleted = match store.db.run_with(move |c| runs::prune(c, &filter, BATCH, between)).await {
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
