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
//!   runs); [`CronTrigger`]: a cron schedule declared in code.
//! - The `#[task]`, `#[workflow]` and `#[trigger]` macros, and the registries they submit to
//!   ([`workflow::registered`], [`trigger::registered`], [`trigger::cron_triggers`]): what a
//!   workflow package (a `cdylib` with `cloacina_workflow_plugin::package!()`) is made of, and
//!   [`plugin`], the ABI such a package and its host speak.
//!
//! The `cloacina` crate re-exports all of it (under `cloacina::cloacina_workflow` too) and runs
//! it; depend on this crate alone for code that defines or inspects workflows without running
//! them.

pub mod context;
mod definition;
pub mod plugin;
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
pub use trigger::{CronTrigger, Trigger, TriggerError, TriggerResult};

/// `#[task]`, `#[workflow]` and `#[trigger]` for workflow packages (upstream's
/// `use cloacina_workflow::{task, workflow, …}`): the same macros `cloacina` exports, generating
/// code against this crate, so a package needs no dependency on the engine.
pub use cloacina_macros::{packaged_task as task, packaged_trigger as trigger, packaged_workflow as workflow};

/// Paths used by code the macros generate; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use serde_json;
}

/// Workflow graphs and runnable workflows.
pub mod workflow {
    pub use crate::definition::{
        registered, FailureHook, HookFuture, HookResult, Registration, SuccessHook, Task, TaskDefinition, TaskFuture,
        TaskHooks, Workflow, WorkflowBuilder,
    };
    pub use crate::spec::{check_graph, check_name, Error, GraphNode, TaskSpec, WorkflowSpec, MAX_NAME};
}

pub use workflow::{Error as WorkflowError, Task, TaskSpec, Workflow, WorkflowBuilder, WorkflowSpec};
