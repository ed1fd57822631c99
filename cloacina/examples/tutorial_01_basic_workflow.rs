//! Mirrors upstream Cloacina's library tutorial `01-basic-workflow`: one `#[task]` in a
//! `#[workflow]`, run with `DefaultRunner::with_config` and read back from the final context.
//!
//! ```text
//! cargo run -p cloacina --example tutorial_01_basic_workflow   # DATABASE_URL=postgres://… for PostgreSQL
//! ```

#[path = "support/mod.rs"]
mod support;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError};
use serde_json::json;

#[workflow(name = "simple_workflow", description = "A simple workflow with one task")]
/// The `simple_workflow` workflow.
pub mod simple_workflow {
    use super::*;

    /// Says hello and leaves a message in the context.
    #[task]
    pub async fn hello_world(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        println!("Hello from Cloacina!");
        context.insert("message", json!("Hello World!"))?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url = support::fresh_database_url("tutorial-01.db");
    let runner = DefaultRunner::with_config(&url, DefaultRunnerConfig::default()).await?;
    let result = runner.execute("simple_workflow", Context::new()).await?;
    println!("status: {:?}", result.status);
    match result.final_context.get("message") {
        Some(message) => println!("message found in the final context: {message}"),
        None => println!("no message in the final context!"),
    }
    runner.shutdown().await?;
    assert_eq!(result.final_context.get("message"), Some(&json!("Hello World!")));
    Ok(())
}
