//! Recovery: finds tasks whose lease expired (their runner crashed or stalled) and hands them on:
//! back to Ready for another attempt, or to Failed when the attempts are spent, each with a
//! `recovery_events` row (written by the DAL in the same transaction).

use std::sync::Arc;

use crate::dal::task_executions as tasks;
use crate::database::UniversalTimestamp;
use crate::models::TaskStatus;
use crate::runner::Engine;

/// Most expired tasks handled per pass.
const BATCH: u32 = 100;

/// Runs a recovery pass every `recovery_interval` until the runner shuts down.
pub(crate) async fn run(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(engine.config.recovery_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if engine.is_shutting_down() {
            return;
        }
        if let Err(e) = pass(&engine).await {
            tracing::warn!(error = %e, "recovery pass failed");
        }
    }
}

async fn pass(engine: &Arc<Engine>) -> Result<(), crate::Error> {
    let recovered = engine.db.run(|c| tasks::expire_leases(c, UniversalTimestamp::now(), BATCH)).await?;
    for r in recovered {
        tracing::warn!(task = %r.task_execution_id, from = ?r.previous_claimant, to = %r.new_status, attempt = r.attempt, "recovered a task whose lease expired");
        if r.new_status == TaskStatus::Failed {
            let id = r.task_execution_id;
            if let Some(t) = engine.db.run(move |c| tasks::get(c, id)).await? {
                let info = engine.pipeline_info(r.pipeline_execution_id).await?;
                crate::scheduler::after_outcome(engine, &info, &t.task_name, true).await?;
            }
        } else {
            engine.work_available.notify_one();
        }
    }
    Ok(())
}
