//! Cron: a schedule that starts a workflow every two seconds (six fields: seconds first), read in
//! a time zone. Every runner runs the cron service; the database makes each fire time start one
//! pipeline, however many runners share it.
//!
//! ```text
//! cargo run -p cloacina --example cron               # SQLite; DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use cloacina::cron::ScheduleConfig;
use cloacina::executor::WorkflowExecutor;
use cloacina::models::CatchupPolicy;
use cloacina::runner::DefaultRunner;
use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "heartbeat_report", description = "A tiny report, on a schedule")]
mod heartbeat_report {
    use super::*;

    #[task]
    async fn measure(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let at = chrono::Utc::now().format("%H:%M:%S%.3f").to_string();
        context.insert_or_update("measured_at", serde_json::json!(at));
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::database_url("cloacina-cron.db");
    let runner = DefaultRunner::new(&url).await?;
    let schedule =
        ScheduleConfig::new("heartbeat_report", "*/2 * * * * *").timezone("Europe/Berlin").catchup(CatchupPolicy::Skip);
    let schedule = runner.create_schedule(schedule).await?;
    println!("schedule {} ({} in {})", schedule.id, schedule.cron_expression, schedule.timezone);
    for t in runner.next_fire_times(schedule.id, 3).await? {
        println!("  next fire time {t}");
    }
    // Let it fire three times, then show what it started.
    loop {
        let history = runner.schedule_history(schedule.id, 10).await?;
        if history.iter().filter(|f| f.pipeline_execution_id.is_some()).count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    runner.delete_schedule(schedule.id).await?;
    let runs = runner.list_executions(Default::default()).await?;
    for run in runs.iter().filter(|r| r.workflow_name == "heartbeat_report").take(3) {
        println!("  run {} {} created {}", run.id, run.status, run.created_at.format("%H:%M:%S%.3f"));
    }
    runner.shutdown().await?;
    Ok(())
}
