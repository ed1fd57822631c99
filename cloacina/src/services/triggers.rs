//! The event-trigger service: every runner with triggers whose workflow it has runs one. Time is
//! cut into slots of each trigger's poll interval (slot = time since the epoch / interval), and
//! per slot:
//!
//! 1. the runner claims the slot: a compare-and-set on `trigger_schedules.last_poll_tick`, which
//!    exactly one runner wins, so the trigger is polled once per interval across all runners;
//! 2. the winner calls the poll function;
//! 3. on `Fire`, in one transaction: it locks the trigger's row (fires of one trigger commit one
//!    after another), drops the fire when the trigger does not allow concurrent runs and a run it
//!    started with the same context hash is unfinished or ended after the poll began (the poll
//!    may have seen the world before that run's work), and otherwise creates the run and records
//!    it in `trigger_executions`.
//!
//! A runner that dies between 1 and 3 loses that slot's poll: the next slot polls again, so a
//! condition that still holds fires one interval late. A poll function should observe its
//! event, not consume it (the workflow consumes it), or an event taken in a lost slot is gone.
//! A failed step 3 is retried; a retry after a commit the runner did not hear of finds the run
//! and does not create a second one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{sleep_until, Clock};
use crate::dal::{pipeline_executions as pipelines, trigger_executions, trigger_schedules};
use crate::database::{write_transaction, UniversalTimestamp};
use crate::engine::{stamp, Persistence, Store};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::PipelineExecutionId;
use crate::telemetry;
use crate::trigger::{Trigger, TriggerResult};
use crate::{scheduler, Error};

/// The slot `now` falls in for `interval`.
pub(crate) fn slot(now: DateTime<Utc>, interval: Duration) -> i64 {
    let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    now.timestamp_millis().div_euclid(interval)
}

/// When slot `tick` begins.
fn slot_start(tick: i64, interval: Duration) -> DateTime<Utc> {
    let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    DateTime::from_timestamp_millis(tick.saturating_mul(interval)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Records `triggers` (a runner calls it at start and when a package brings new ones, before the
/// service polls them).
pub(crate) async fn register(store: &Store, triggers: &[Trigger], clock: &dyn Clock) -> Result<(), Error> {
    for t in triggers {
        let (t, now) = (t.clone(), stamp(clock));
        store
            .db
            .run(move |c| {
                trigger_schedules::register(c, t.name(), t.workflow(), t.poll_interval(), t.allows_concurrent(), now)
            })
            .await?;
    }
    Ok(())
}

/// What the trigger service touches: the parts of a service that starts or settles runs.
pub(crate) type Poller = super::keeper::RunKeeper;

/// The service loop: sleeps until the next slot of any trigger begins, then handles each trigger
/// whose slot has come. It follows the catalog: a trigger a package brings is polled from its
/// current slot on, one whose workflow is withdrawn stops being polled.
pub(crate) async fn run(poller: Arc<Poller>, shutdown: Arc<crate::engine::Shutdown>) {
    let mut stop = shutdown.stop_services.subscribe();
    let mut changed = poller.catalog.subscribe();
    // The slot each trigger last handled here: a trigger's first pass polls its current slot.
    let mut handled: HashMap<String, i64> = HashMap::new();
    loop {
        let triggers = poller.catalog.now().triggers.clone();
        let now = poller.clock.now();
        handled.retain(|name, _| triggers.iter().any(|t| t.name() == name));
        for t in triggers.iter() {
            let last = handled.entry(t.name().to_owned()).or_insert_with(|| slot(now, t.poll_interval()) - 1);
            let tick = slot(now, t.poll_interval());
            if tick > *last {
                *last = tick;
                if let Err(e) = handle(&poller, t, tick).await {
                    tracing::warn!(trigger = t.name(), error = %e, "trigger slot failed; the next slot polls again");
                }
            }
        }
        let next = triggers.iter().map(|t| slot_start(handled[t.name()] + 1, t.poll_interval())).min();
        tokio::select! {
            () = async {
                match next {
                    Some(next) => sleep_until(&*poller.clock, next).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = changed.changed() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Slot `tick` of trigger `t`: claim it, poll, and start a run on a fire.
async fn handle(poller: &Arc<Poller>, t: &Trigger, tick: i64) -> Result<(), Error> {
    let (e, name) = (poller.clone(), t.name().to_owned());
    let claimed = poller
        .store
        .db
        .run_with(move |c| {
            e.store.faults.check(FaultPoint::TriggerClaim, FaultTiming::Before)?;
            let won = trigger_schedules::claim_tick(c, &name, tick, stamp(&*e.clock))?;
            e.store.faults.check(FaultPoint::TriggerClaim, FaultTiming::AfterCommit)?;
            Ok::<_, Error>(won)
        })
        .await?;
    if !claimed {
        return Ok(());
    }
    let polled_at = stamp(&*poller.clock);
    let result = match t.poll().await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(trigger = t.name(), error = %e, "trigger poll failed");
            return Ok(());
        }
    };
    if !result.should_fire() {
        return Ok(());
    }
    fire(poller, t, result, polled_at).await
}

/// What a fire came to.
enum Fired {
    Started(Option<crate::results::ExecutionResult>),
    Overlapping,
    Disabled,
}

/// Starts the run trigger `t` fired with `result` (from a poll that began at `polled_at`), unless
/// it must not overlap a run with the same context.
async fn fire(
    poller: &Arc<Poller>,
    t: &Trigger,
    result: TriggerResult,
    polled_at: UniversalTimestamp,
) -> Result<(), Error> {
    let wf = poller
        .catalog
        .now()
        .offered(t.workflow())
        .cloned()
        .ok_or_else(|| Error::UnknownWorkflow(t.workflow().to_owned()))?;
    let hash = result.context_hash();
    let input = result.into_context().unwrap_or_default();
    let pipeline = PipelineExecutionId::new();
    let (e, name, concurrent, h) = (poller.clone(), t.name().to_owned(), t.allows_concurrent(), hash.clone());
    let fired = poller
        .store
        .persist("start a triggered run", Persistence::BRIEF, move |c, attempt| {
            if attempt > 0 && pipelines::get(c, pipeline)?.is_some() {
                return Ok(Fired::Started(None)); // an earlier try committed unseen
            }
            e.store.faults.check(FaultPoint::TriggerFire, FaultTiming::Before)?;
            let fired = write_transaction(c, |c| {
                let now = stamp(&*e.clock);
                if !trigger_schedules::lock_enabled(c, &name, now)? {
                    return Ok::<_, Error>(Fired::Disabled);
                }
                if !concurrent && trigger_executions::overlaps(c, &name, &h, polled_at)? {
                    return Ok(Fired::Overlapping);
                }
                let ended = scheduler::create_pipeline(c, &e.store.faults, pipeline, &wf, &input, now)?;
                if ended.is_none() {
                    e.store.announce_work(c)?;
                }
                trigger_executions::insert(c, &name, &h, pipeline, &e.settings.runner_name, now)?;
                Ok(Fired::Started(ended))
            })?;
            e.store.faults.check(FaultPoint::TriggerFire, FaultTiming::AfterCommit)?;
            Ok(fired)
        })
        .await?;
    match fired {
        Fired::Started(ended) => {
            tracing::info!(trigger = t.name(), workflow = t.workflow(), %pipeline, context_hash = %hash, "trigger fired");
            telemetry::trigger_fired();
            if let Some(result) = ended {
                poller.runs.pipeline_finished(pipeline, Some(result));
            }
            poller.signals.work_available.notify_one();
        }
        Fired::Overlapping => {
            tracing::debug!(trigger = t.name(), context_hash = %hash, "fire dropped: a run with this context is unfinished");
        }
        Fired::Disabled => tracing::debug!(trigger = t.name(), "fire dropped: the trigger is disabled"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cut_time_by_the_interval() {
        let t = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
        let five = Duration::from_secs(5);
        assert_eq!(slot(t(0), five), 0);
        assert_eq!(slot(t(4_999), five), 0);
        assert_eq!(slot(t(5_000), five), 1);
        assert_eq!(slot_start(3, five), t(15_000));
        assert_eq!(slot(slot_start(7, five), five), 7, "a slot starts inside itself");
    }
}
