//! Mirrors upstream Cloacina's library tutorial `05-advanced` (cron scheduling): three workflows
//! (backup, health check, report) registered with `register_cron_workflow` on second-level
//! schedules, run by the cron service, then the execution statistics.
//!
//! Upstream runs for a minute; this runs until every schedule has fired and its pipeline has
//! ended (at most 30 s), so it can check the statistics it prints.
//!
//! ```text
//! cargo run -p cloacina --example tutorial_05_advanced   # DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError};
use serde_json::{json, Value};

#[workflow(name = "data_backup_workflow", description = "Automated data backup process")]
/// The `data_backup_workflow` workflow.
pub mod data_backup_workflow {
    use super::*;

    #[task(retry_attempts = 2, retry_backoff = "fixed", retry_delay_ms = 500)]
    /// The `check_backup_prerequisites` task.
    pub async fn check_backup_prerequisites(context: &mut Context<Value>) -> Result<(), TaskError> {
        context.insert("backup_type", json!("incremental"))?;
        context.insert("disk_space_available", json!(true))?;
        Ok(())
    }

    #[task(dependencies = ["check_backup_prerequisites"], retry_attempts = 3, retry_backoff = "exponential", retry_delay_ms = 200)]
    /// The `create_backup_snapshot` task.
    pub async fn create_backup_snapshot(context: &mut Context<Value>) -> Result<(), TaskError> {
        let id = format!("backup_{}", chrono::Utc::now().timestamp_micros());
        context.insert("backup_id", json!(id))?;
        context.insert("backup_size_bytes", json!(50 * 1024 * 1024))?;
        Ok(())
    }

    #[task(dependencies = ["create_backup_snapshot"], retry_attempts = 2, retry_backoff = "fixed", retry_delay_ms = 300)]
    /// The `verify_backup_integrity` task.
    pub async fn verify_backup_integrity(context: &mut Context<Value>) -> Result<(), TaskError> {
        let id: String = context.get_required("backup_id")?;
        context.insert("integrity_verified", json!(true))?;
        println!("backup {id} verified");
        Ok(())
    }
}

#[workflow(name = "health_check_workflow", description = "System health monitoring checks")]
/// The `health_check_workflow` workflow.
pub mod health_check_workflow {
    use super::*;

    #[task(retry_attempts = 1)]
    /// The `check_system_resources` task.
    pub async fn check_system_resources(context: &mut Context<Value>) -> Result<(), TaskError> {
        context.insert("cpu_usage_percent", json!(10.0 + fastrand::f64() * 50.0))?;
        Ok(())
    }

    #[task(retry_attempts = 3, retry_backoff = "exponential", retry_delay_ms = 100)]
    /// The `check_database_connectivity` task.
    pub async fn check_database_connectivity(context: &mut Context<Value>) -> Result<(), TaskError> {
        context.insert("db_connection_healthy", json!(true))?;
        Ok(())
    }

    #[task(dependencies = ["check_system_resources", "check_database_connectivity"], retry_attempts = 2)]
    /// The `update_health_metrics` task.
    pub async fn update_health_metrics(context: &mut Context<Value>) -> Result<(), TaskError> {
        let healthy: bool = context.get_required("db_connection_healthy")?;
        context.insert("overall_health_score", json!(if healthy { 100.0 } else { 70.0 }))?;
        Ok(())
    }
}

#[workflow(name = "daily_report_workflow", description = "Daily summary report generation")]
/// The `daily_report_workflow` workflow.
pub mod daily_report_workflow {
    use super::*;

    #[task(retry_attempts = 2, retry_backoff = "exponential", retry_delay_ms = 300)]
    /// The `collect_daily_metrics` task.
    pub async fn collect_daily_metrics(context: &mut Context<Value>) -> Result<(), TaskError> {
        context.insert("daily_metrics", json!({"total_users": 5000 + fastrand::u32(..1000)}))?;
        Ok(())
    }

    #[task(dependencies = ["collect_daily_metrics"], retry_attempts = 2)]
    /// The `generate_usage_report` task.
    pub async fn generate_usage_report(context: &mut Context<Value>) -> Result<(), TaskError> {
        let id = format!("daily_report_{}", chrono::Utc::now().format("%Y%m%d"));
        context.insert("report_id", json!(id))?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::fresh_database_url("cronscheduling.db");
    let config = DefaultRunnerConfig::builder()
        .enable_cron_scheduling(true)
        .cron_enable_recovery(true)
        .cron_poll_interval(Duration::from_secs(10))
        .build()?;
    let runner = DefaultRunner::with_config(&url, config).await?;
    let started = chrono::Utc::now();
    let mut ids = Vec::new();
    for (workflow, every) in [
        ("data_backup_workflow", "*/3 * * * * *"),
        ("health_check_workflow", "*/2 * * * * *"),
        ("daily_report_workflow", "*/4 * * * * *"),
    ] {
        let id = runner.register_cron_workflow(workflow, every, "UTC").await?;
        println!("scheduled {workflow} ({every}): {id}");
        ids.push(id);
    }

    // Wait until every schedule has fired and each fired run has ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ready = true;
        for &id in &ids {
            let fired = runner.get_cron_execution_history(id, 10, 0).await?;
            let mut ended = !fired.is_empty();
            for f in &fired {
                match f.pipeline_execution_id {
                    Some(p) => ended &= runner.get_execution_status(p).await?.is_terminal(),
                    None => ended = false,
                }
            }
            ready &= ended;
        }
        if ready {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the schedules did not fire within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stats = runner.get_cron_execution_stats(started - chrono::Duration::hours(1)).await?;
    println!("execution statistics (last hour):");
    println!("   total executions: {}", stats.total_executions);
    println!("   successful executions: {}", stats.successful_executions);
    println!("   lost executions: {}", stats.lost_executions);
    println!("   success rate: {:.1}%", stats.success_rate);
    for id in ids {
        runner.delete_cron_schedule(id).await?;
    }
    runner.shutdown().await?;
    assert!(stats.total_executions >= 3, "{stats:?}");
    assert_eq!(stats.lost_executions, 0, "{stats:?}");
    Ok(())
}
