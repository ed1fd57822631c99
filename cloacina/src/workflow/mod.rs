//! Workflows: [`WorkflowSpec`], a validated DAG of task specifications with its deterministic order
//! and structural version, and [`Workflow`], the spec paired with each task's code (both from
//! `cloacina-workflow`), and the registry `#[workflow]` adds to when a binary links a workflow.

pub use cloacina_workflow::workflow::*;

/// A workflow that registers itself when linked: `#[workflow]` submits one per module.
/// Runners include every registered workflow (see [`registered`]).
pub struct Registration(pub fn() -> Workflow);

inventory::collect!(Registration);

/// Every workflow registered in this binary by `#[workflow]`, sorted by name.
pub fn registered() -> Vec<Workflow> {
    let mut all: Vec<Workflow> = inventory::iter::<Registration>.into_iter().map(|r| (r.0)()).collect();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    all
}
