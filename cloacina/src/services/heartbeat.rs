//! The heartbeat: renews the lease of every claim this runner holds, in one transaction per
//! interval (rows locked in ascending id order, so it never deadlocks with the completer).
//!
//! It keeps renewing while an outcome is being recorded (a slow or retried write must not lose
//! its claim) and runs until the services stop, after every attempt has ended. A failed renewal is
//! tried again at the next tick; the lease is several intervals long, so one miss loses nothing.

use std::sync::Arc;

use crate::dal::task_executions as tasks;
use crate::database::UniversalTimestamp;
use crate::engine::{next_tick, Engine};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::TaskExecutionId;

/// The service loop.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut stop = engine.stop_services.subscribe();
    let mut tick = tokio::time::interval(engine.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &mut stop).await {
        let mut ids: Vec<TaskExecutionId> = engine.held_tasks().into_iter().map(|(t, _)| t).collect();
        if ids.is_empty() {
            continue;
        }
        ids.sort_unstable();
        let (e, sent) = (engine.clone(), ids.clone());
        let renewed = engine
            .db
            .run_with(move |c| {
                e.faults.check(FaultPoint::Heartbeat, FaultTiming::Before)?;
                let now = UniversalTimestamp::now();
                let held = tasks::renew_leases(c, &e.runner_name, &sent, now.plus(e.config.lease_duration), now)?;
                e.faults.check(FaultPoint::Heartbeat, FaultTiming::AfterCommit)?;
                Ok::<_, crate::Error>(held)
            })
            .await;
        match renewed {
            Ok(held) => {
                // A claim missing from the answer either ended normally (its outcome was just
                // recorded) or was taken by recovery elsewhere. Only a task whose attempt is
                // still running here is a real loss.
                let lost = ids.iter().filter(|id| !held.contains(id) && engine.is_running_here(**id)).count();
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "claims on running tasks were taken over (their leases expired and recovery handed them on); \
                         those attempts' outcomes will be discarded"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing leases failed; trying again at the next heartbeat"),
        }
    }
}
