//! The cron service: every runner runs one. It sleeps until the earliest next fire time of the
//! schedules whose workflow it has (or until a schedule changes in this process, the clock jumps,
//! or `cron_recheck_interval` passes, for changes made elsewhere), then, per due schedule:
//!
//! 1. plans the fire times to run from the catch-up policy ([`plan`]);
//! 2. claims each one: a row in `cron_executions`, whose unique key (schedule, fire time) lets
//!    exactly one runner win, whatever the timing;
//! 3. creates the winner's pipeline and links it to the fire time in one transaction, fenced on
//!    the claim ([`cron_executions::link_pipeline`]);
//! 4. moves the schedule's `next_run_at` with a compare-and-set (one runner moves it).
//!
//! A runner that dies between 2 and 3 leaves a claimed fire time with no pipeline. After
//! `lease_duration`, any runner that has the workflow takes it over and starts it
//! ([`cron_executions::reclaim_orphaned`]). A runner that dies between 3 and 4 leaves
//! `next_run_at` behind. The next runner re-plans the same fire times, loses every claim, and
//! moves it on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::sleep_until;
use crate::cron::{Bounds, CronExpression};
use crate::dal::{cron_executions, cron_schedules};
use crate::database::{write_transaction, UniversalTimestamp};
use crate::engine::stamp;
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::{CatchupPolicy, CronExecutionId, CronSchedule, PipelineExecutionId};
use crate::telemetry;
use crate::{scheduler, Context, Error};

/// Schedules and orphaned fire times handled per pass.
const BATCH: u32 = 100;

/// Most past fire times one pass enumerates per schedule; older ones are dropped (logged).
const MAX_ENUMERATED: usize = 100_000;

/// The fire times to run for one due schedule, and where it goes next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Fire times to start, oldest first.
    pub(crate) run: Vec<DateTime<Utc>>,
    /// Missed fire times the policy does not run.
    pub(crate) dropped: usize,
    /// The first fire time after `now` (`None` once the schedule has ended).
    pub(crate) next: Option<DateTime<Utc>>,
}

/// Plans a due schedule whose first unhandled fire time is `first`: times within `late` of
/// `now` are on time and run; older ones follow `policy`.
pub(crate) fn plan(
    expression: &CronExpression,
    bounds: Bounds,
    policy: CatchupPolicy,
    max_catchup: u32,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
    late: Duration,
) -> Plan {
    let late_before = now - chrono::Duration::from_std(late).unwrap_or_default();
    let keep = usize::try_from(max_catchup.max(1)).unwrap_or(usize::MAX);
    let (mut missed, mut on_time, mut dropped) = (VecDeque::new(), Vec::new(), 0usize);
    let mut cursor = Some(first);
    let mut seen = 0;
    while let Some(t) = cursor.filter(|t| *t <= now) {
        seen += 1;
        if t < late_before {
            missed.push_back(t);
            if missed.len() > keep {
                missed.pop_front();
                dropped += 1;
            }
        } else {
            on_time.push(t);
        }
        cursor = if seen < MAX_ENUMERATED {
            bounds.next_fire(expression, t)
        } else {
            tracing::warn!(
                expression = expression.as_str(),
                "more than {MAX_ENUMERATED} missed fire times; older ones dropped"
            );
            bounds.next_fire(expression, now)
        };
    }
    let run = match policy {
        CatchupPolicy::Skip => {
            dropped += missed.len();
            on_time
        }
        CatchupPolicy::RunOnce => {
            dropped += missed.len().saturating_sub(1);
            missed.back().copied().into_iter().chain(on_time).collect()
        }
        CatchupPolicy::RunAll => missed.into_iter().chain(on_time).collect(),
    };
    Plan { run, dropped, next: cursor }
}

/// What the cron service touches: the parts of a service that starts or settles runs.
pub(crate) type Cron = super::keeper::RunKeeper;

/// The service loop.
pub(crate) async fn run(cron: Arc<Cron>, shutdown: Arc<crate::engine::Shutdown>) {
    let recheck = cron.settings.config.cron_recheck_interval;
    let mut stop = shutdown.stop_services.subscribe();
    let mut clock_changes = cron.clock.changes();
    loop {
        if *stop.borrow() {
            return;
        }
        // The next fire time is waited for on the runner's clock; the recheck, for schedules
        // created or changed by another process, is a real-time poll of the database. A clock
        // that jumps (a manual one) wakes the service too: orphaned fire times come due by it.
        let (next, recheck) = match pass(&cron).await {
            Ok(next) => (next, recheck),
            Err(e) => {
                tracing::warn!(error = %e, "cron pass failed; retrying");
                (None, recheck.min(Duration::from_secs(5)))
            }
        };
        let fire_time = async {
            match next {
                Some(at) => sleep_until(&*cron.clock, at).await,
                None => std::future::pending().await,
            }
        };
        let clock_jumped = async {
            match clock_changes.as_mut() {
                Some(rx) => {
                    let _ = rx.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = fire_time => {}
            () = clock_jumped => {}
            _ = tokio::time::sleep(recheck) => {}
            _ = cron.signals.schedules_changed.notified() => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

/// One pass: orphaned fire times, then due schedules. Returns the earliest next fire time.
pub(crate) async fn pass(cron: &Arc<Cron>) -> Result<Option<DateTime<Utc>>, Error> {
    let now = cron.clock.now();
    let names = cron.catalog.now().workflow_names.clone();
    let (runner, orphaned_after) = (cron.settings.runner_name.clone(), cron.settings.config.lease_duration);
    let recover = cron.settings.config.cron_enable_recovery;
    let orphans = cron
        .store
        .db
        .run(move |c| {
            if !recover {
                return Ok(Vec::new());
            }
            let before = UniversalTimestamp::from(now).minus(orphaned_after);
            let taken = cron_executions::reclaim_orphaned(c, &runner, &names, before, now.into(), BATCH)?;
            let mut found = Vec::with_capacity(taken.len());
            for fire in taken {
                if let Some(s) = cron_schedules::get(c, fire.schedule_id)? {
                    found.push((fire, s));
                }
            }
            Ok(found)
        })
        .await?;
    for (fire, schedule) in orphans {
        tracing::warn!(schedule = %schedule.id, fire_time = %fire.scheduled_time, "re-firing a fire time whose runner died before starting it");
        start(cron, &schedule, fire.id, fire.scheduled_time).await?;
    }
    let names = cron.catalog.now().workflow_names.clone();
    let due = cron.store.db.run(move |c| cron_schedules::due(c, &names, now.into(), BATCH)).await?;
    for schedule in due {
        handle_due(cron, schedule, now).await?;
    }
    let names = cron.catalog.now().workflow_names.clone();
    Ok(cron.store.db.run(move |c| cron_schedules::next_due_time(c, &names)).await?)
}

async fn handle_due(cron: &Arc<Cron>, s: CronSchedule, now: DateTime<Utc>) -> Result<(), Error> {
    let Some(expected) = s.next_run_at else { return Ok(()) };
    let (plan, last) = match CronExpression::parse(&s.cron_expression, &s.timezone) {
        Ok(expression) => {
            let late = cron.settings.config.cron_late_threshold;
            let cap = u32::try_from(cron.settings.config.cron_max_catchup_executions).unwrap_or(u32::MAX);
            let plan = plan(&expression, Bounds::of(&s), s.catchup_policy, s.max_catchup.min(cap), expected, now, late);
            let last = plan.run.last().copied().or(s.last_run_at);
            (plan, last)
        }
        Err(e) => {
            // Only a row edited by hand gets here (the API validates): stop it instead of spinning.
            tracing::error!(schedule = %s.id, error = %e, "stored cron schedule is invalid; it is stopped until updated");
            (Plan { run: Vec::new(), dropped: 0, next: None }, s.last_run_at)
        }
    };
    if plan.dropped > 0 {
        telemetry::cron_missed(plan.dropped);
        tracing::info!(schedule = %s.id, dropped = plan.dropped, policy = s.catchup_policy.as_str(), "missed fire times not run");
    }
    for &fire_time in &plan.run {
        let (id, e) = (s.id, cron.clone());
        let claimed = cron
            .store
            .db
            .run_with(move |c| {
                e.store.faults.check(FaultPoint::CronClaim, FaultTiming::Before)?;
                let claimed = cron_executions::claim(c, id, fire_time, &e.settings.runner_name, now.into())?;
                e.store.faults.check(FaultPoint::CronClaim, FaultTiming::AfterCommit)?;
                Ok::<_, Error>(claimed)
            })
            .await?;
        if let Some(claim) = claimed {
            start(cron, &s, claim, fire_time).await?;
        }
    }
    let (id, next) = (s.id, plan.next);
    let moved = cron
        .store
        .db
        .run(move |c| cron_schedules::advance(c, id, expected, next, last, UniversalTimestamp::from(now)))
        .await?;
    if !moved {
        tracing::debug!(schedule = %s.id, "another runner advanced the schedule first");
    }
    Ok(())
}

/// Starts the pipeline of a fire time this runner has claimed: creates it and links it to the
/// fire time in one transaction, fenced on the claim (nothing is written if the claim was taken
/// over meanwhile).
async fn start(
    cron: &Arc<Cron>,
    s: &CronSchedule,
    claim: CronExecutionId,
    fire_time: DateTime<Utc>,
) -> Result<(), Error> {
    let wf = cron
        .catalog
        .now()
        .offered(&s.workflow_name)
        .cloned()
        .ok_or_else(|| Error::UnknownWorkflow(s.workflow_name.clone()))?;
    let (e, input) = (cron.clone(), Context::from_value(s.context.clone())?);
    let pipeline = PipelineExecutionId::new();
    let started = cron
        .store
        .db
        .run_with(move |c| {
            e.store.faults.check(FaultPoint::CronStart, FaultTiming::Before)?;
            let started = write_transaction(c, |c| {
                let now = stamp(&*e.clock);
                let ended = scheduler::create_pipeline(c, &e.store.faults, pipeline, &wf, &input, now)?;
                if ended.is_none() {
                    e.store.announce_work(c)?;
                }
                if !cron_executions::link_pipeline(c, claim, &e.settings.runner_name, pipeline, now)? {
                    return Err(Error::Database(crate::database::Error::Query(
                        diesel::result::Error::RollbackTransaction,
                    )));
                }
                Ok(ended)
            });
            let started = match started {
                Ok(ended) => Some(ended),
                Err(Error::Database(crate::database::Error::Query(diesel::result::Error::RollbackTransaction))) => None,
                Err(other) => return Err(other),
            };
            e.store.faults.check(FaultPoint::CronStart, FaultTiming::AfterCommit)?;
            Ok(started)
        })
        .await?;
    match started {
        Some(ended) => {
            tracing::info!(schedule = %s.id, workflow = %s.workflow_name, %fire_time, %pipeline, "cron fired");
            telemetry::cron_fired();
            if let Some(result) = ended {
                cron.runs.pipeline_finished(pipeline, Some(result));
            }
            cron.signals.work_available.notify_one();
            Ok(())
        }
        None => {
            tracing::warn!(schedule = %s.id, %fire_time, "lost the fire time to another runner before starting it");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn hourly_plan(policy: CatchupPolicy, max: u32, first: &str, now: &str) -> Plan {
        let expression = CronExpression::parse("0 * * * *", "UTC").expect("parse");
        let bounds = Bounds { start_at: None, end_at: None };
        plan(&expression, bounds, policy, max, utc(first), utc(now), Duration::from_secs(60))
    }

    #[test]
    fn an_on_time_fire_runs_under_every_policy() {
        for policy in [CatchupPolicy::Skip, CatchupPolicy::RunOnce, CatchupPolicy::RunAll] {
            let p = hourly_plan(policy, 10, "2026-01-01T10:00:00Z", "2026-01-01T10:00:02Z");
            assert_eq!(p.run, vec![utc("2026-01-01T10:00:00Z")], "{policy:?}");
            assert_eq!((p.dropped, p.next), (0, Some(utc("2026-01-01T11:00:00Z"))));
        }
    }

    #[test]
    fn missed_fires_follow_the_policy() {
        // Down from 10:00 to 15:30: 10:00 … 15:00 were missed (six fire times).
        let (first, now) = ("2026-01-01T10:00:00Z", "2026-01-01T15:30:00Z");
        let skip = hourly_plan(CatchupPolicy::Skip, 10, first, now);
        assert_eq!((skip.run.len(), skip.dropped), (0, 6));
        assert_eq!(skip.next, Some(utc("2026-01-01T16:00:00Z")));
        let once = hourly_plan(CatchupPolicy::RunOnce, 10, first, now);
        assert_eq!((once.run, once.dropped), (vec![utc("2026-01-01T15:00:00Z")], 5));
        let all = hourly_plan(CatchupPolicy::RunAll, 10, first, now);
        assert_eq!(all.run.len(), 6);
        assert_eq!(all.run[0], utc("2026-01-01T10:00:00Z"));
        let capped = hourly_plan(CatchupPolicy::RunAll, 2, first, now);
        assert_eq!((capped.run, capped.dropped), (vec![utc("2026-01-01T14:00:00Z"), utc("2026-01-01T15:00:00Z")], 4));
    }

    #[test]
    fn bounds_limit_the_fire_times() {
        let expression = CronExpression::parse("0 * * * *", "UTC").expect("parse");
        let bounds = Bounds { start_at: Some(utc("2026-01-01T12:00:00Z")), end_at: Some(utc("2026-01-01T13:00:00Z")) };
        assert_eq!(bounds.next_fire(&expression, utc("2026-01-01T09:30:00Z")), Some(utc("2026-01-01T12:00:00Z")));
        assert_eq!(bounds.next_fire(&expression, utc("2026-01-01T12:00:00Z")), Some(utc("2026-01-01T13:00:00Z")));
        assert_eq!(bounds.next_fire(&expression, utc("2026-01-01T13:00:00Z")), None);
        let p = plan(
            &expression,
            bounds,
            CatchupPolicy::RunAll,
            10,
            utc("2026-01-01T12:00:00Z"),
            utc("2026-01-02T00:00:00Z"),
            Duration::from_secs(60),
        );
        assert_eq!((p.run.len(), p.next), (2, None), "the schedule ends after 13:00");
    }
}
