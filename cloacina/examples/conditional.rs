//! Conditional tasks: trigger rules on context values and on other tasks' outcomes choose what
//! runs; tasks whose rules do not hold are Skipped, and skips propagate.
//!
//! ```text
//! cargo run -p cloacina --example conditional        # SQLite; DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError};

#[workflow(name = "order_routing")]
mod order_routing {
    use super::*;

    #[task]
    async fn classify(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let amount: f64 = context.get_as("amount")?.unwrap_or_default();
        context.insert("amount_checked", serde_json::json!(amount))?;
        Ok(())
    }

    #[task(dependencies = ["classify"], trigger_rules = context_value("amount", greater_than, 1000))]
    async fn manual_review(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        context.insert("route", serde_json::json!("manual review"))?;
        Ok(())
    }

    #[task(dependencies = ["classify"], trigger_rules = context_value("amount", less_than, 1000))]
    async fn auto_approve(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        context.insert("route", serde_json::json!("auto approved"))?;
        Ok(())
    }

    /// Runs whichever branch ran: `any` of the two succeeded.
    #[task(
        dependencies = ["manual_review", "auto_approve"],
        trigger_rules = any(task_success("manual_review"), task_success("auto_approve"))
    )]
    async fn notify(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let route: String = context.get_as("route")?.unwrap_or_default();
        println!("  notify: order routed to {route}");
        Ok(())
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::database_url("cloacina-conditional.db");
    let runner = DefaultRunner::with_config(&url, DefaultRunnerConfig::default()).await?;
    for amount in [250.0, 5_000.0] {
        let mut input = Context::new();
        input.insert("amount", serde_json::json!(amount))?;
        println!("order of {amount}:");
        let result = runner.execute("order_routing", input).await?;
        for t in &result.task_results {
            println!("  {:<14} {}", t.task_name, t.status);
        }
    }
    runner.shutdown().await?;
    Ok(())
}
