//! Quickstart: a workflow with a fan-out and a join, run by the engine on the embedded SQLite
//! default (`DATABASE_URL=postgres://…` runs it on PostgreSQL).
//!
//! ```text
//! cargo run -p cloacina --example quickstart
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use cloacina::executor::WorkflowExecutor;
use cloacina::retry::RetryPolicy;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError};
use serde_json::{json, Value};

fn orders_report() -> Result<Workflow, cloacina::workflow::Error> {
    Workflow::builder("orders_report")
        .description("Extract orders and customers, clean both in parallel, load a report")
        .simple_task("extract", &[], |mut ctx: Context<Value>| async move {
            println!("  extract: reading source rows");
            ctx.insert("orders", json!([12, 7, 30]))?;
            ctx.insert("customers", json!(["ada", "linus", "grace"]))?;
            Ok(ctx)
        })
        .simple_task("clean_orders", &["extract"], |mut ctx: Context<Value>| async move {
            let orders: Vec<i64> = ctx.get_as("orders")?.unwrap_or_default();
            println!("  clean_orders: {} orders", orders.len());
            ctx.insert("order_total", json!(orders.iter().sum::<i64>()))?;
            Ok(ctx)
        })
        .simple_task("clean_customers", &["extract"], |mut ctx: Context<Value>| async move {
            let customers: Vec<String> = ctx.get_as("customers")?.unwrap_or_default();
            println!("  clean_customers: {} customers", customers.len());
            ctx.insert("customer_count", json!(customers.len()))?;
            Ok(ctx)
        })
        .task(
            TaskSpec {
                retry: RetryPolicy { max_attempts: 3, ..RetryPolicy::default() },
                timeout: Some(Duration::from_secs(10)),
                ..TaskSpec::new("load", &["clean_orders", "clean_customers"])
            },
            |mut ctx: Context<Value>| async move {
                let total = ctx.get("order_total").cloned().ok_or_else(|| TaskError::fatal("no order_total"))?;
                let count = ctx.get("customer_count").cloned().ok_or_else(|| TaskError::fatal("no customer_count"))?;
                println!("  load: writing the report");
                ctx.insert("report", json!(format!("{count} customers, order total {total}")))?;
                Ok(ctx)
            },
        )
        .build()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::database_url("cloacina-quickstart.db");
    let runner =
        DefaultRunner::builder(url).config(DefaultRunnerConfig::default()).workflow(orders_report()?).build().await?;
    println!("runner {} on {}", runner.runner_name(), runner.database().url());
    let mut input = Context::new();
    input.insert("requested_by", json!("quickstart"))?;
    let result = runner.execute("orders_report", input).await?;
    println!("pipeline {} {} in {:?}", result.execution_id, result.status, result.duration.unwrap_or_default());
    for task in &result.task_results {
        println!("  {:<16} {:<10} attempts {}", task.task_name, task.status, task.attempts);
    }
    println!("result: {}", result.final_context.get("report").cloned().unwrap_or_default());
    runner.shutdown().await?;
    Ok(())
}
