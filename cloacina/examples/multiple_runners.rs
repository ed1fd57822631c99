//! Several runners sharing one PostgreSQL database: they claim disjoint batches with
//! `FOR UPDATE SKIP LOCKED`, and every task runs once. Here three runners live in one process;
//! run the example in several terminals at once and the processes share the work the same way.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo run -p cloacina --example multiple_runners
//! ```

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::Context;

const TASKS: usize = 300;

fn fan_out() -> Result<Workflow, cloacina::workflow::Error> {
    let names: Vec<String> = (0..TASKS).map(|i| format!("part_{i:03}")).collect();
    names
        .iter()
        .fold(Workflow::builder("fan_out"), |b, n| {
            b.simple_task(n, &[], |ctx: Context<serde_json::Value>| async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await; // some work
                Ok(ctx)
            })
        })
        .build()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let url =
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut runners = Vec::new();
    for i in 0..3 {
        let config = DefaultRunnerConfig { runner_name: Some(format!("runner-{i}")), ..DefaultRunnerConfig::default() };
        runners.push(DefaultRunner::builder(url.clone()).config(config).workflow(fan_out()?).build().await?);
    }
    let result = runners[0].execute("fan_out", Context::new()).await?;
    let id = result.execution_id;
    let rows = runners[0].database().run(move |c| cloacina::dal::task_executions::list_for_pipeline(c, id)).await?;
    let mut by_runner: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows {
        *by_runner.entry(row.claimed_by.unwrap_or_default()).or_default() += 1;
    }
    println!("pipeline {} {}: {TASKS} tasks", result.execution_id, result.status);
    for (runner, n) in by_runner {
        println!("  {runner}: {n} tasks");
    }
    for r in runners {
        r.shutdown().await?;
    }
    Ok(())
}
