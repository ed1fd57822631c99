//! Mirrors upstream Cloacina's library tutorial `02-multi-task`: an extract → transform → load
//! chain with fixed-backoff retries, run twice at once with different inputs.
//!
//! ```text
//! cargo run -p cloacina --example tutorial_02_multi_task   # DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use cloacina::executor::PipelineExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError};
use serde_json::{json, Value};

#[workflow(name = "etl_workflow", description = "Simple ETL workflow with extract, transform, and load tasks")]
/// The `etl_workflow` workflow.
pub mod etl_workflow {
    use super::*;

    /// Takes the input numbers.
    #[task(retry_attempts = 2, retry_backoff = "fixed", retry_delay_ms = 1000)]
    pub async fn extract_numbers(context: &mut Context<Value>) -> Result<(), TaskError> {
        let numbers: Vec<i64> = context
            .get_as("numbers")?
            .ok_or_else(|| TaskError::ValidationFailed { message: "No numbers found in context".to_string() })?;
        context.insert("extracted_numbers", json!(numbers))?;
        context.insert("extract_timestamp", json!(chrono::Utc::now()))?;
        println!("extracted {} numbers", numbers.len());
        Ok(())
    }

    /// Doubles them.
    #[task(dependencies = ["extract_numbers"], retry_attempts = 2, retry_backoff = "fixed", retry_delay_ms = 1000)]
    pub async fn transform_numbers(context: &mut Context<Value>) -> Result<(), TaskError> {
        let numbers: Vec<i64> = context.get_required("extracted_numbers")?;
        let doubled: Vec<i64> = numbers.iter().map(|n| n * 2).collect();
        context.insert("transformed_numbers", json!(doubled))?;
        context.insert("transform_timestamp", json!(chrono::Utc::now()))?;
        Ok(())
    }

    /// "Loads" them (records what would be written).
    #[task(dependencies = ["transform_numbers"], retry_attempts = 2, retry_backoff = "fixed", retry_delay_ms = 1000)]
    pub async fn load_numbers(context: &mut Context<Value>) -> Result<(), TaskError> {
        let numbers: Vec<i64> = context.get_required("transformed_numbers")?;
        context.insert("loaded_numbers", json!(numbers))?;
        context.insert("load_timestamp", json!(chrono::Utc::now()))?;
        context.insert("load_status", json!("success"))?;
        println!("loaded {} numbers", numbers.len());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::fresh_database_url("tutorial-02.db");
    let runner = DefaultRunner::with_config(&url, DefaultRunnerConfig::default()).await?;
    let mut first = Context::new();
    first.insert("numbers", json!([1, 2, 3, 4, 5]))?;
    let mut second = Context::new();
    second.insert("numbers", json!([10, 20, 30, 40, 50]))?;
    // Both submitted at once; the second is awaited first, as in the tutorial.
    let (result1, result2) =
        tokio::join!(runner.execute("etl_workflow", first), runner.execute("etl_workflow", second));
    let (result1, result2) = (result1?, result2?);
    println!("second workflow: {:?} in {:?}", result2.status, result2.duration);
    println!("first workflow: {:?} in {:?}", result1.status, result1.duration);
    runner.shutdown().await?;
    assert_eq!(result1.final_context.get("loaded_numbers"), Some(&json!([2, 4, 6, 8, 10])));
    assert_eq!(result2.final_context.get("loaded_numbers"), Some(&json!([20, 40, 60, 80, 100])));
    Ok(())
}
