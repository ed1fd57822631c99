//! Recovery, every `recovery_interval`:
//!
//! 1. **Expired leases.** Tasks whose runner stopped renewing (it crashed, stalled or lost the
//!    database) go back to Ready for another attempt, or to Failed when their attempts are spent,
//!    each with a `recovery_events` row; for a failed one the scheduler decides what follows, in
//!    the same transaction. Only tasks of workflow versions this runner has are handled: deciding
//!    what follows needs the workflow.
//! 2. **Pipelines standing still.** An active pipeline with no task Ready or Running will not
//!    move unless someone decides its remaining tasks or ends it. The engine never leaves one like
//!    that (an outcome and its consequences commit together), so finding one means a crash of an
//!    older version, or a hand edit; recovery settles it and records a `pipeline_reconciled` event.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use crate::clock::Ticker;
use crate::dal::{pipeline_executions as pipelines, recovery_events, task_executions as tasks};
use crate::database::write_transaction;
use crate::engine::{stamp, Runs, Shutdown};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::{PipelineExecutionId, PipelineStatus, TaskStatus};
use crate::results::ExecutionResult;
use crate::scheduler;
use crate::telemetry;
use crate::Error;

/// Most tasks (or pipelines) handled per pass.
const BATCH: u32 = 100;

/// The service loop.
pub(crate) async fn run(recovery: Recovery, shutdown: Arc<Shutdown>) {
    let mut stop = shutdown.stop_services.subscribe();
    let mut tick = Ticker::new(recovery.clock.clone(), recovery.settings.config.recovery_interval);
    while tick.tick(&mut stop).await {
        if let Err(e) = recovery.expire().await {
            tracing::warn!(error = %e, "recovering expired leases failed; trying again next pass");
        }
        if let Err(e) = recovery.reconcile().await {
            tracing::warn!(error = %e, "settling pipelines that stand still failed; trying again next pass");
        }
    }
}

/// What the recovery service touches: the parts of a service that starts or settles runs.
pub(crate) type Recovery = super::keeper::RunKeeper;

impl Recovery {
    /// Hands on the tasks of this runner's versions whose lease expired by the clock.
    pub(crate) async fn expire(&self) -> Result<(), Error> {
        let e = self.clone();
        let (recovered, ended) = self
            .store
            .db
            .run_with(move |c| {
                e.store.faults.check(FaultPoint::ExpireLeases, FaultTiming::Before)?;
                let out = write_transaction(c, |c| {
                    let now = stamp(&*e.clock);
                    let recovered = tasks::expire_leases(c, &e.catalog.now().versions, now, BATCH)?;
                    if recovered.iter().any(|r| r.new_status == TaskStatus::Ready) {
                        e.store.announce_work(c)?;
                    }
                    let mut failed: BTreeMap<PipelineExecutionId, Vec<String>> = BTreeMap::new();
                    for r in recovered.iter().filter(|r| r.new_status == TaskStatus::Failed) {
                        if let Some(t) = tasks::get(c, r.task_execution_id)? {
                            failed.entry(r.pipeline_execution_id).or_default().push(t.task_name);
                        }
                    }
                    let mut ended = Vec::new();
                    for (id, names) in failed {
                        let Some(info) = e.runs.pipeline_info_in(c, id)? else { continue };
                        if let Some(result) = scheduler::settle(c, &e.store.faults, &info, &names, now)?.ended {
                            ended.push((id, result));
                        }
                    }
                    Ok::<_, Error>((recovered, ended))
                })?;
                e.store.faults.check(FaultPoint::ExpireLeases, FaultTiming::AfterCommit)?;
                Ok::<_, Error>(out)
            })
            .await?;
        if !recovered.is_empty() {
            telemetry::leases_recovered(recovered.len());
        }
        for r in &recovered {
            tracing::warn!(
                task = %r.task_execution_id, pipeline = %r.pipeline_execution_id, from = ?r.previous_claimant,
                to = %r.new_status, attempt = r.attempt, "recovered a task whose lease expired"
            );
        }
        if recovered.iter().any(|r| r.new_status == TaskStatus::Ready) {
            self.signals.work_available.notify_one();
        }
        hand_over(&self.runs, ended);
        Ok(())
    }

    /// Settles the active pipelines of this runner's versions that stand still.
    pub(crate) async fn reconcile(&self) -> Result<(), Error> {
        let versions = self.catalog.now().versions.clone();
        let still = self.store.db.run(move |c| pipelines::quiescent(c, &versions, BATCH)).await?;
        for id in still {
            let e = self.clone();
            let settled = self
                .store
                .db
                .run_with(move |c| {
                    e.store.faults.check(FaultPoint::Reconcile, FaultTiming::Before)?;
                    let out = write_transaction(c, |c| {
                        pipelines::lock(c, &[id])?;
                        let active = pipelines::get(c, id)?
                            .is_some_and(|p| matches!(p.status, PipelineStatus::Pending | PipelineStatus::Running));
                        if !active || tasks::any_in_status(c, id, &[TaskStatus::Ready, TaskStatus::Running])? {
                            return Ok::<_, Error>(None);
                        }
                        let Some(info) = e.runs.pipeline_info_in(c, id)? else { return Ok(None) };
                        let now = stamp(&*e.clock);
                        let settled = scheduler::settle_all(c, &e.store.faults, &info, now)?;
                        if settled.made_ready > 0 {
                            e.store.announce_work(c)?;
                        }
                        let details = json!({
                            "decided_tasks": settled.decided,
                            "made_ready": settled.made_ready,
                            "ended": settled.ended.as_ref().map(|r| r.status.as_str()),
                            "runner": e.settings.runner_name,
                        });
                        recovery_events::insert(c, id, None, recovery_events::PIPELINE_RECONCILED, details, now)?;
                        Ok(Some(settled))
                    })?;
                    e.store.faults.check(FaultPoint::Reconcile, FaultTiming::AfterCommit)?;
                    Ok::<_, Error>(out)
                })
                .await?;
            let Some(settled) = settled else { continue };
            tracing::warn!(
                pipeline = %id, decided = settled.decided, made_ready = settled.made_ready, ended = settled.ended.is_some(),
                "settled a pipeline that stood still (nothing Ready or Running, yet unfinished)"
            );
            if settled.made_ready > 0 {
                self.signals.work_available.notify_one();
            }
            hand_over(&self.runs, settled.ended.map(|r| (id, r)).into_iter().collect());
        }
        Ok(())
    }
}

fn hand_over(runs: &Runs, ended: Vec<(PipelineExecutionId, ExecutionResult)>) {
    for (id, result) in ended {
        tracing::info!(pipeline = %id, status = %result.status, "pipeline ended");
        runs.pipeline_finished(id, Some(result));
    }
}
