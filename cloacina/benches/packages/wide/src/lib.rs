//! The engine benchmark's `wide` workflow as a package: 10,000 independent no-op tasks, built at
//! load time (a `#[workflow]` module of 10,000 functions would be absurd) and registered the way
//! `#[workflow]` registers its workflows.

use cloacina_workflow::workflow::Registration;
use cloacina_workflow::{Context, TaskError, Workflow};

cloacina_workflow_plugin::package!();

/// Tasks in the workflow; the compiled-in `wide` of `benches/engine.rs` has as many.
const TASKS: usize = 10_000;

async fn noop(context: Context<serde_json::Value>) -> Result<Context<serde_json::Value>, TaskError> {
    Ok(context)
}

fn wide() -> Workflow {
    (0..TASKS)
        .fold(Workflow::builder("packaged_wide"), |b, i| b.simple_task(&format!("t{i}"), &[], noop))
        .build()
        .expect("a wide graph is valid")
}

inventory::submit! { Registration(wide) }
