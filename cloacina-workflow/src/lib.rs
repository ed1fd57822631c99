//! Cloacina's authoring model, with no database and no async runtime: what a workflow is made of.
//!
//! - [`Context`]: the JSON document tasks read and write.
//! - [`TaskError`] and [`TaskState`]: why a task failed, where it stands in a result.
//! - [`RetryPolicy`] and [`RetryCondition`]: attempts, backoff, which errors retry.
//! - [`TriggerRule`]: whether a task whose dependencies are terminal runs or is skipped.
//! - [`WorkflowSpec`] and [`check_graph`](workflow::check_graph): the validated task graph and its structural version;
//!   the `#[workflow]` macro applies the same rules at compile time.
//! - [`Workflow`] and the [`Task`] trait: the graph paired with each task's code and hooks.
//! - [`Trigger`], [`TriggerResult`], [`TriggerError`]: event triggers (poll functions that start
//!   runs).
//!
//! The `cloacina` crate re-exports all of it (under `cloacina::cloacina_workflow` too) and runs
//! it; depend on this crate alone for code that defines or inspects workflows without running
//! them.

pub mod context;
mod definition;
pub mod retry;
mod rules;
mod spec;
pub mod status;
pub mod task;
pub mod trigger;

pub use context::{Context, Error as ContextError};
pub use retry::{Backoff, RetryCondition, RetryPolicy};
pub use status::{PipelineStatus, TaskStatus, UnknownStatus};
pub use task::{TaskError, TaskOutcomes, TaskState, TriggerRule, ValueOperator};
pub use trigger::{Trigger, TriggerError, TriggerResult};

/// Workflow graphs and runnable workflows.
pub mod workflow {
    pub use crate::definition::{
        FailureHook, HookFuture, HookResult, SuccessHook, Task, TaskFuture, TaskHooks, Workflow, WorkflowBuilder,
    };
    pub use crate::spec::{check_graph, check_name, Error, GraphNode, TaskSpec, WorkflowSpec, MAX_NAME};
}

pub use workflow::{Error as WorkflowError, Task, TaskSpec, Workflow, WorkflowBuilder, WorkflowSpec};
