//! Workflows: [`WorkflowSpec`], a validated DAG of task specifications with its deterministic order
//! and structural version, and [`Workflow`], the spec paired with each task's code (both from
//! `cloacina-workflow`, with the registry `#[workflow]` adds to when a binary links a workflow).

pub use cloacina_workflow::workflow::*;
