//! The heartbeat: renews the lease of every claim this runner holds, in one transaction per
//! interval. It skips rows another transaction holds rather than wait for them (so it never takes
//! part in a deadlock) and tries those again a few milliseconds later.
//!
//! It keeps renewing while an outcome is being recorded (a slow or retried write must not lose
//! its claim) and runs until the services stop, after every attempt has ended. A failed renewal is
//! tried again at the next tick; the lease is several intervals long, so one miss loses nothing.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Ticker};
use crate::dal::task_executions as tasks;
use crate::engine::{stamp, Claims, Settings, Shutdown, Store};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::TaskExecutionId;

/// The service loop.
pub(crate) async fn run(
    store: Arc<Store>,
    claims: Arc<Claims>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    shutdown: Arc<Shutdown>,
) {
    let mut stop = shutdown.stop_services.subscribe();
    let mut tick = Ticker::new(clock.clone(), settings.config.heartbeat_interval);
    let renewer = Renewer { store, claims, settings, clock };
    while tick.tick(&mut stop).await {
        let mut ids: Vec<TaskExecutionId> = renewer.claims.held_tasks().into_iter().map(|(t, _)| t).collect();
        ids.sort_unstable();
        // Rows another transaction holds for a moment are skipped, not waited for: try those
        // again shortly, a few times, before leaving them to the next tick.
        for round in 1..=BUSY_ROUNDS {
            if ids.is_empty() {
                break;
            }
            let Some(busy) = renewer.renew(&ids).await else { break };
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

/// What a renewal touches.
struct Renewer {
    store: Arc<Store>,
    claims: Arc<Claims>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
}

impl Renewer {
    /// Renews the leases of `ids`; returns those whose rows were busy (`None` when the renewal failed).
    async fn renew(&self, ids: &[TaskExecutionId]) -> Option<Vec<TaskExecutionId>> {
        let (store, settings, clock, sent) =
            (self.store.clone(), self.settings.clone(), self.clock.clone(), ids.to_vec());
        let renewed = self
            .store
            .db
            .run_with(move |c| {
                store.faults.check(FaultPoint::Heartbeat, FaultTiming::Before)?;
                let now = stamp(&*clock);
                let lease = now.plus(settings.config.lease_duration);
                let renewal = tasks::renew_leases(c, &settings.runner_name, &sent, lease, now)?;
                store.faults.check(FaultPoint::Heartbeat, FaultTiming::AfterCommit)?;
                Ok::<_, crate::Error>(renewal)
            })
            .await;
        match renewed {
            Ok(renewal) => {
                // A claim that ended either ended normally (its outcome was just recorded) or was
                // taken by recovery elsewhere. Only a task whose attempt still runs here is a loss.
                let lost = renewal.ended(ids).filter(|id| self.claims.is_running_here(*id)).count();
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
}
