//! Mirrors upstream Cloacina's library tutorial `04-error-handling`: retries with exponential
//! backoff, a fallback that runs only when the fetch failed (`task_failed`), quality-based branches
//! (`context_value`), a notification when both sources failed, `on_success` / `on_failure` hooks,
//! and a per-task report from `TaskState`.
//!
//! Upstream's fetch fails at random (70 %); here it fails on every attempt, so the fallback path
//! is taken every time and the run can check itself: the pipeline ends Failed (a task failed),
//! yet the cached data flows through to the final report. Retry delays start at 200 ms instead
//! of upstream's 1 s, to keep the example quick.
//!
//! ```text
//! cargo run -p cloacina --example tutorial_04_error_handling   # DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::task::TaskState;
use cloacina::{task, workflow, Context, TaskError, TaskStatus};
use serde_json::{json, Value};

static SUCCESS_HOOKS: AtomicU32 = AtomicU32::new(0);
static FAILURE_HOOKS: AtomicU32 = AtomicU32::new(0);

/// Called once a task's success is recorded.
async fn on_task_success(
    task_id: &str,
    _context: &Context<Value>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    println!("[callback] task '{task_id}' completed successfully");
    SUCCESS_HOOKS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Called once a task has failed for good (its retries spent).
async fn on_data_fetch_failure(
    task_id: &str,
    error: &cloacina::cloacina_workflow::TaskError,
    _context: &Context<Value>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    println!("[alert] critical data fetch '{task_id}' failed: {error}");
    FAILURE_HOOKS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn records(source: &str, quality: [i64; 3]) -> Value {
    json!({
        "records": quality.iter().enumerate().map(|(i, q)| json!({"id": i + 1, "value": format!("{source}_{}", i + 1), "quality": q})).collect::<Vec<_>>(),
        "source": source,
        "total_records": 3
    })
}

#[workflow(
    name = "resilient_pipeline",
    description = "Pipeline demonstrating error handling patterns and retry mechanisms"
)]
/// The `resilient_pipeline` workflow.
pub mod resilient_pipeline {
    use super::*;

    #[task(retry_attempts = 3, retry_delay_ms = 200, retry_backoff = "exponential", on_failure = on_data_fetch_failure)]
    /// The `fetch_data` task.
    pub async fn fetch_data(_context: &mut Context<Value>) -> Result<(), TaskError> {
        println!("fetching data from the external source ... unavailable");
        Err(TaskError::ExecutionFailed {
            message: "External source temporarily unavailable".to_string(),
            task_id: "fetch_data".to_string(),
            timestamp: chrono::Utc::now(),
        })
    }

    #[task(dependencies = ["fetch_data"], trigger_rules = task_failed("fetch_data"))]
    /// The `cached_data` task.
    pub async fn cached_data(context: &mut Context<Value>) -> Result<(), TaskError> {
        println!("using cached data as the fallback");
        context.insert("raw_data", records("cache", [60, 65, 70]))?;
        Ok(())
    }

    #[task(dependencies = ["fetch_data", "cached_data"], on_success = on_task_success)]
    /// The `process_data` task.
    pub async fn process_data(context: &mut Context<Value>) -> Result<(), TaskError> {
        let raw = context
            .get("raw_data")
            .cloned()
            .ok_or_else(|| TaskError::ValidationFailed { message: "Missing raw_data".to_string() })?;
        let qualities: Vec<i64> =
            raw["records"].as_array().into_iter().flatten().filter_map(|r| r["quality"].as_i64()).collect();
        let average = qualities.iter().sum::<i64>() / qualities.len().max(1) as i64;
        context.insert("data_quality_score", json!(average))?;
        context.insert("processed_data", json!({"source": raw["source"], "quality_score": average}))?;
        println!("processed data with quality score {average}");
        Ok(())
    }

    #[task(
        dependencies = ["process_data"],
        trigger_rules = all(task_success("process_data"), context_value("data_quality_score", greater_than, 80))
    )]
    /// The `high_quality_processing` task.
    pub async fn high_quality_processing(context: &mut Context<Value>) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        context.insert("processing_result", json!({"path": "high_quality"}))?;
        Ok(())
    }

    #[task(
        dependencies = ["process_data"],
        trigger_rules = all(task_success("process_data"), context_value("data_quality_score", less_than, 81))
    )]
    /// The `low_quality_processing` task.
    pub async fn low_quality_processing(context: &mut Context<Value>) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        context.insert("processing_result", json!({"path": "low_quality"}))?;
        Ok(())
    }

    #[task(
        dependencies = ["fetch_data", "cached_data"],
        trigger_rules = all(task_failed("fetch_data"), task_failed("cached_data"))
    )]
    /// The `failure_notification` task.
    pub async fn failure_notification(context: &mut Context<Value>) -> Result<(), TaskError> {
        context.insert("failure_notification", json!({"status": "critical_failure"}))?;
        Ok(())
    }

    #[task(
        dependencies = ["high_quality_processing", "low_quality_processing"],
        trigger_rules = any(task_success("high_quality_processing"), task_success("low_quality_processing")),
        on_success = on_task_success
    )]
    /// The `final_report` task.
    pub async fn final_report(context: &mut Context<Value>) -> Result<(), TaskError> {
        let path = context.get("processing_result").and_then(|r| r["path"].as_str()).unwrap_or("unknown").to_owned();
        let source = context.get("processed_data").and_then(|d| d["source"].as_str()).unwrap_or("unknown").to_owned();
        context.insert("execution_report", json!({"data_source": source, "processing_path": path}))?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::fresh_database_url("tutorial-04.db");
    let runner = DefaultRunner::with_config(&url, DefaultRunnerConfig::default()).await?;
    let result = runner.execute("resilient_pipeline", Context::new()).await?;
    println!("pipeline completed with status {:?} in {:?}", result.status, result.duration);
    for task_result in &result.task_results {
        let (icon, shown) = match &task_result.status {
            TaskState::Completed { .. } => ("OK", "Completed"),
            TaskState::Failed { .. } => ("FAIL", "Failed"),
            TaskState::Pending => ("PEND", "Pending"),
            TaskState::Running { .. } => ("RUN", "Running"),
            TaskState::Skipped { .. } => ("SKIP", "Skipped"),
        };
        let retried = match task_result.attempt_count {
            n if n > 1 => format!(" (retried {} times)", n - 1),
            _ => String::new(),
        };
        println!("  {icon} task '{}': {shown}{retried}", task_result.task_name);
        match &task_result.status {
            TaskState::Failed { error, .. } => println!("    error: {error}"),
            TaskState::Skipped { reason, .. } => println!("    reason: {reason}"),
            _ => {}
        }
    }
    runner.shutdown().await?;

    let status = |n: &str| result.task_results.iter().find(|t| t.task_name == n).map(|t| t.task_status);
    let fetch = result.task_results.iter().find(|t| t.task_name == "fetch_data").map(|t| t.attempt_count);
    assert_eq!((status("fetch_data"), fetch), (Some(TaskStatus::Failed), Some(3)), "three attempts, then failed");
    assert_eq!(status("cached_data"), Some(TaskStatus::Completed));
    assert_eq!(status("low_quality_processing"), Some(TaskStatus::Completed), "cached quality averages 65");
    assert_eq!(status("high_quality_processing"), Some(TaskStatus::Skipped));
    assert_eq!(status("failure_notification"), Some(TaskStatus::Skipped));
    assert_eq!(status("final_report"), Some(TaskStatus::Completed));
    assert_eq!(result.status, cloacina::executor::WorkflowStatus::Failed, "a task failed");
    assert_eq!(
        result.final_context.get("execution_report"),
        Some(&json!({"data_source": "cache", "processing_path": "low_quality"}))
    );
    // Hooks run after the outcome is recorded, in their own tasks: wait for them to be seen.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (SUCCESS_HOOKS.load(Ordering::SeqCst), FAILURE_HOOKS.load(Ordering::SeqCst)) != (2, 1) {
        assert!(std::time::Instant::now() < deadline, "hooks did not run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
