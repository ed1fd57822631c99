//! Retries: a task that fails twice with a retryable error, then succeeds. The waiting retry is a
//! Ready row with `retry_at`, so it would survive a restart of the runner.
//!
//! ```text
//! cargo run -p cloacina --example retries            # SQLite; DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU32, Ordering};

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError};

static CALLS: AtomicU32 = AtomicU32::new(0);

#[workflow(name = "flaky_fetch", description = "Fetch from a service that is briefly unavailable")]
mod flaky_fetch {
    use super::*;

    #[task(retry_attempts = 5, retry_backoff = "exponential", retry_delay_ms = 100, retry_max_delay_ms = 1_000)]
    async fn fetch(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        if call < 3 {
            println!("  fetch: attempt {call} failed (service unavailable), will retry");
            return Err(TaskError::retryable("service unavailable"));
        }
        println!("  fetch: attempt {call} succeeded");
        context.insert("payload", serde_json::json!({"items": 42}))?;
        Ok(())
    }

    #[task(dependencies = ["fetch"])]
    async fn validate(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let items = context.get("payload").and_then(|p| p["items"].as_i64());
        match items {
            Some(n) if n > 0 => Ok(()),
            _ => Err(TaskError::fatal("payload has no items: retrying will not help")),
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::database_url("cloacina-retries.db");
    let runner = DefaultRunner::with_config(&url, DefaultRunnerConfig::default()).await?;
    let result = runner.execute("flaky_fetch", Context::new()).await?;
    for t in &result.task_results {
        println!("{:<9} {:<10} attempts {}", t.task_name, t.status, t.attempts);
    }
    println!("pipeline {}", result.status);
    runner.shutdown().await?;
    Ok(())
}
