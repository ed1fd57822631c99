//! Cloacina: durable task pipelines inside your Rust application.
//!
//! A workflow is a DAG of async tasks passing a JSON context; every state change is persisted, so
//! work survives crashes and restarts and several processes can share it. The database is chosen
//! at run time by its URL: SQLite (`sqlite://app.db`, the embedded default) or PostgreSQL
//! (`postgres://…`, for many runners on many hosts).
//!
//! Start with [`runner::DefaultRunner`] and the [`workflow`](macro@workflow) / [`task`](macro@task) macros (see the README's
//! example); cron schedules are in [`cron`], and every operator action and query the
//! server, `cloacinactl` and Python share in [`ops`], the application layer. Underneath: the engine (the [`executor`] API over the claim loop, attempts,
//! completer, heartbeat, scheduler and recovery services), the authoring model
//! ([`Context`], [`TaskError`], [`retry`], [`task::TriggerRule`], [`workflow`](mod@workflow)), and the
//! persistence foundation: [`database`] (URL → backend, [`database::AnyConnection`], schema,
//! migrations, pool) and [`dal`] (one module per table).

pub mod clock;
mod config;
pub mod cron;
pub mod dal;
pub mod database;
mod engine;
mod error;
pub mod executor;
#[cfg(feature = "failpoints")]
pub mod faults;
#[cfg(not(feature = "failpoints"))]
#[allow(unreachable_pub, dead_code)] // without the feature nothing arms a fault
mod faults;
pub mod input;
pub mod logging;
pub mod models;
pub mod ops;
#[cfg(feature = "packages")]
pub mod packages;
mod results;
pub mod runner;
mod scheduler;
mod services;
pub mod task;
pub mod telemetry;
pub mod trigger;
pub mod workflow;

pub use ::cloacina_workflow::{context, retry};
pub use cloacina_macros::{task, trigger, workflow};
pub use context::{Context, Error as ContextError};
pub use database::{Backend, BackendFeature, Database, DatabaseConfig};
pub use error::{Error, ErrorKind};
pub use models::TaskStatus;
pub use task::{TaskError, TaskHandle};
pub use workflow::Workflow;

/// The authoring model under upstream Cloacina's path (`cloacina::cloacina_workflow::TaskError`,
/// …): the `cloacina-workflow` crate (context, task errors, retry policies and conditions, trigger
/// rules, workflow definitions).
pub use ::cloacina_workflow;

/// What a workflow program usually needs, in one import: `use cloacina::prelude::*;`.
pub mod prelude {
    pub use crate::cloacina_workflow::*;
    pub use crate::executor::{
        ExecutionHandle, ExecutionResult, PipelineExecutor, PipelineResult, StatusCallback, TaskResult,
        WorkflowExecutor, WorkflowStatus,
    };
    pub use crate::runner::{DefaultRunner, DefaultRunnerConfig};
    pub use crate::task::{TaskAttempt, TaskHandle};
    pub use crate::{task, trigger, workflow, TaskStatus};
}

/// Paths used by code that `#[workflow]` generates; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use serde_json;
}

/// The README's example must compile (it is built as a doctest, not run).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
