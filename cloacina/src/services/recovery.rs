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

use crate::dal::{pipeline_executions as pipelines, recovery_events, task_executions as tasks};
use crate::database::write_transaction;
use crate::engine::{next_tick, Engine};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::{PipelineExecutionId, PipelineStatus, TaskStatus};
use crate::results::ExecutionResult;
use crate::scheduler;
use crate::telemetry;
use crate::Error;

/// Most tasks (or pipelines) handled per pass.
const BATCH: u32 = 100;

/// The service loop.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut stop = engine.stop_services.subscribe();
    let mut tick = tokio::time::interval(engine.config.recovery_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while next_tick(&mut tick, &mut stop).await {
        if let Err(e) = expire(&engine).await {
            tracing::warn!(error = %e, "recovering expired leases failed; trying again next pass");
        }
        if let Err(e) = reconcile(&engine).await {
            tracing::warn!(error = %e, "settling pipelines that stand still failed; trying again next pass");
        }
    }
}

/// One pass over expired leases.
pub(crate) async fn expire(engine: &Arc<Engine>) -> Result<(), Error> {
    let e = engine.clone();
    let (recovered, ended) = engine
        .db
        .run_with(move |c| {
            e.faults.check(FaultPoint::ExpireLeases, FaultTiming::Before)?;
            let out = write_transaction(c, |c| {
                let now = e.now();
                let recovered = tasks::expire_leases(c, &e.versions, now, BATCH)?;
                if recovered.iter().any(|r| r.new_status == TaskStatus::Ready) {
                    e.announce_work(c)?;
                }
                let mut failed: BTreeMap<PipelineExecutionId, Vec<String>> = BTreeMap::new();
                for r in recovered.iter().filter(|r| r.new_status == TaskStatus::Failed) {
                    if let Some(t) = tasks::get(c, r.task_execution_id)? {
                        failed.entry(r.pipeline_execution_id).or_default().push(t.task_name);
                    }
                }
                let mut ended = Vec::new();
                for (id, names) in failed {
                    let Some(info) = e.pipeline_info_in(c, id)? else { continue };
                    if let Some(result) = scheduler::settle(c, &e.faults, &info, &names, now)?.ended {
                        ended.push((id, result));
                    }
                }
                Ok::<_, Error>((recovered, ended))
            })?;
            e.faults.check(FaultPoint::ExpireLeases, FaultTiming::AfterCommit)?;
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
        engine.work_available.notify_one();
    }
    hand_over(engine, ended);
    Ok(())
}

/// One pass over active pipelines with nothing Ready or Running.
pub(crate) async fn reconcile(engine: &Arc<Engine>) -> Result<(), Error> {
    let versions = engine.versions.clone();
    let still = engine.db.run(move |c| pipelines::quiescent(c, &versions, BATCH)).await?;
    for id in still {
        let e = engine.clone();
        let settled = engine
            .db
            .run_with(move |c| {
                e.faults.check(FaultPoint::Reconcile, FaultTiming::Before)?;
                let out = write_transaction(c, |c| {
                    // Under the pipeline's lock, look again: it may have moved since the scan.
                    pipelines::lock(c, &[id])?;
                    let active = pipelines::get(c, id)?
                        .is_some_and(|p| matches!(p.status, PipelineStatus::Pending | PipelineStatus::Running));
                    if !active || tasks::any_in_status(c, id, &[TaskStatus::Ready, TaskStatus::Running])? {
                        return Ok::<_, Error>(None);
                    }
                    let Some(info) = e.pipeline_info_in(c, id)? else { return Ok(None) };
                    let now = e.now();
                    let settled = scheduler::settle_all(c, &e.faults, &info, now)?;
                    if settled.made_ready > 0 {
                        e.announce_work(c)?;
                    }
                    let details = json!({
                        "decided_tasks": settled.decided,
                        "made_ready": settled.made_ready,
                        "ended": settled.ended.as_ref().map(|r| r.status.as_str()),
                        "runner": e.runner_name,
                    });
                    recovery_events::insert(c, id, None, recovery_events::PIPELINE_RECONCILED, details, now)?;
                    Ok(Some(settled))
                })?;
                e.faults.check(FaultPoint::Reconcile, FaultTiming::AfterCommit)?;
                Ok::<_, Error>(out)
            })
            .await?;
        let Some(settled) = settled else { continue };
        tracing::warn!(
            pipeline = %id, decided = settled.decided, made_ready = settled.made_ready, ended = settled.ended.is_some(),
            "settled a pipeline that stood still (nothing Ready or Running, yet unfinished)"
        );
        if settled.made_ready > 0 {
            engine.work_available.notify_one();
        }
        hand_over(engine, settled.ended.map(|r| (id, r)).into_iter().collect());
    }
    Ok(())
}

fn hand_over(engine: &Engine, ended: Vec<(PipelineExecutionId, ExecutionResult)>) {
    for (id, result) in ended {
        tracing::info!(pipeline = %id, status = %result.status, "pipeline ended");
        engine.pipeline_finished(id, Some(result));
    }
}
