//! The heartbeat: renews the lease of every claim this runner holds, in one transaction per
//! interval. It skips rows another transaction holds rather than wait for them (so it never takes
//! part in a deadlock) and tries those again a few milliseconds later.
//!
//! It keeps renewing while an outcome is being recorded (a slow or retried write must not lose
//! its claim) and runs until the services stop, after every attempt has ended. A failed renewal is
//! tried again at the next tick; the lease is several intervals long, so one miss loses nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::dal::task_executions as tasks;
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
        ids.sort_unstable();
        // Rows another transaction holds for a moment are skipped, not waited for: try those
        // again shortly, a few times, before leaving them to the next tick.
        for round in 1..=BUSY_ROUNDS {
            if ids.is_empty() {
                break;
            }
            let Some(busy) = renew(&engine, &ids).await else { break };
            ids = busy;
            if !ids.is_empty() && round < BUSY_ROUNDS {
                tokio::time::sleep(BUSY_PAUSE * round).await;
            }
        }
    }
}

/// Rounds of renewal per tick for leases whose rows were busy.
const BUSY_ROUNDS: u32 = 3;
/// Pause before the next round (times the round number).
const BUSY_PAUSE: Duration = Duration::from_millis(10);

/// Renews the leases of `ids`; returns those whose rows were busy (`None` when the renewal failed).
async fn renew(engine: &Arc<Engine>, ids: &[TaskExecutionId]) -> Option<Vec<TaskExecutionId>> {
    let (e, sent) = (engine.clone(), ids.to_vec());
    let renewed = engine
        .db
        .run_with(move |c| {
            e.faults.check(FaultPoint::Heartbeat, FaultTiming::Before)?;
            let now = e.now();
            let renewal = tasks::renew_leases(c, &e.runner_name, &sent, now.plus(e.config.lease_duration), now)?;
            e.faults.check(FaultPoint::Heartbeat, FaultTiming::AfterCommit)?;
            Ok::<_, crate::Error>(renewal)
        })
        .await;
    match renewed {
        Ok(renewal) => {
            // A claim that ended either ended normally (its outcome was just recorded) or was
            // taken by recovery elsewhere. Only a task whose attempt still runs here is a loss.
            let lost = renewal.ended(ids).filter(|id| engine.is_running_here(*id)).count();
            if lost > 0 {
                tracing::warn!(
                    lost,
                    "claims on running tasks were taken over (their leases expired and recovery handed them on); \
                     those attempts' outcomes will be discarded"
                );
            }
            Some(renewal.busy)
        }
        Err(e) => {
            tracing::warn!(error = %e, "renewing leases failed; trying again at the next heartbeat");
            None
        }
    }
}
