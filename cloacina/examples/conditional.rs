//! Conditional tasks: trigger rules on context values and on other tasks' outcomes choose what
//! runs; tasks whose rules do not hold are Skipped, and skips propagate.
//!
//! ```text
//! cargo run -p cloacina --example conditional        # SQLite; DATABASE_URL=postgres://… for PostgreSQL
//! ```

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
    // Logs on stderr, filtered by RUST_LOG (for example RUST_LOG=cloacina=debug); warnings by default.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://cloacina-conditional.db".to_owned());
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
