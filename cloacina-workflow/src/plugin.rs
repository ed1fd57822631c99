//! The package ABI, version [`ABI_VERSION`]: what a compiled workflow package and the host that
//! loads it say to each other (ADR 0011). Rust has no stable ABI, so the two meet at C functions
//! that pass JSON documents; this module is the one definition both sides use, the package through
//! `cloacina-workflow-plugin` and the host through `cloacina`'s package loader.
//!
//! A package (a `cdylib` whose crate root calls `cloacina_workflow_plugin::package!()`) exports
//! six C functions (the last optional), looked up by the names in [`symbols`]:
//!
//! - [`AbiVersionFn`]: the ABI version it was built for. The host calls it before anything else
//!   and refuses a package built for another version.
//! - [`DescribeFn`]: a [`Description`] as JSON (its workflows with each task's specification, its
//!   event triggers and its cron triggers), in a buffer the host hands back to [`FreeFn`].
//! - [`CallFn`]: starts one [`Request`] (run a task, a hook, a trigger poll) on the package's own
//!   async runtime and returns a call id at once; the package later calls the host's [`DoneFn`]
//!   exactly once with the call's token and a [`Reply`] as JSON (valid only during that call).
//! - [`CancelFn`]: cancels a call (a timeout, a shutdown); its reply is then [`Reply::Cancelled`].
//! - [`RetireFn`] (optional: a package built before it existed loads without it): the host holds
//!   no workflow of the package any more, so the package stops its runtime's threads; a later
//!   call (the same library opened again) starts a new runtime. A library is never unloaded, so
//!   without this every version a long-lived worker loaded would keep its threads.
//!
//! JSON keeps the two sides independent of each other's Rust types and versions: a field either
//! side does not know is ignored, so adding one is not a new ABI version; changing the meaning
//! of one, or a function's signature, is.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::TaskSpec;
use crate::task::TaskError;
use crate::trigger::CronTrigger;

/// The ABI version this crate speaks.
pub const ABI_VERSION: u32 = 1;

/// The `interface` a package manifest names (`[package] interface`), upstream's name.
pub const INTERFACE: &str = "cloacina-workflow-plugin";

/// The names of the exported functions, NUL-terminated for symbol lookup.
pub mod symbols {
    /// [`AbiVersionFn`](super::AbiVersionFn).
    pub const ABI_VERSION: &[u8] = b"cloacina_plugin_abi_version\0";
    /// [`DescribeFn`](super::DescribeFn).
    pub const DESCRIBE: &[u8] = b"cloacina_plugin_describe\0";
    /// [`FreeFn`](super::FreeFn).
    pub const FREE: &[u8] = b"cloacina_plugin_free\0";
    /// [`CallFn`](super::CallFn).
    pub const CALL: &[u8] = b"cloacina_plugin_call\0";
    /// [`CancelFn`](super::CancelFn).
    pub const CANCEL: &[u8] = b"cloacina_plugin_cancel\0";
    /// [`RetireFn`](super::RetireFn) (optional).
    pub const RETIRE: &[u8] = b"cloacina_plugin_retire\0";
}

/// `cloacina_plugin_abi_version()`: the ABI version the package was built for.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `cloacina_plugin_describe(&mut len)`: the [`Description`] as JSON; `len` receives its length.
/// The buffer belongs to the package: hand it back to [`FreeFn`].
pub type DescribeFn = unsafe extern "C" fn(len: *mut usize) -> *mut u8;
/// `cloacina_plugin_free(ptr, len)`: frees a buffer [`DescribeFn`] returned.
pub type FreeFn = unsafe extern "C" fn(ptr: *mut u8, len: usize);
/// The host's completion function: `done(token, reply, len)` with a [`Reply`] as JSON, valid
/// only during the call. Called exactly once per call, from any thread.
pub type DoneFn = extern "C" fn(token: u64, reply: *const u8, len: usize);
/// `cloacina_plugin_call(request, len, done, token)`: starts a [`Request`] (JSON, read before it
/// returns) and returns its call id for [`CancelFn`].
pub type CallFn = unsafe extern "C" fn(request: *const u8, len: usize, done: DoneFn, token: u64) -> u64;
/// `cloacina_plugin_cancel(call)`: cancels a call that has not replied yet.
pub type CancelFn = unsafe extern "C" fn(call: u64);
/// `cloacina_plugin_retire()`: no call is in flight and the host will make none until it opens
/// the library again; the package stops its runtime (its threads end) without waiting.
pub type RetireFn = unsafe extern "C" fn();

/// What a package holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    /// The ABI version it speaks (as [`AbiVersionFn`] says).
    pub abi_version: u32,
    /// Its workflows.
    pub workflows: Vec<WorkflowDescription>,
    /// Its event triggers (poll functions).
    #[serde(default)]
    pub triggers: Vec<TriggerDescription>,
    /// Its cron triggers (schedules declared in code).
    #[serde(default)]
    pub cron_triggers: Vec<CronTrigger>,
}

/// One workflow of a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDescription {
    /// Its name.
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// Its author.
    #[serde(default)]
    pub author: Option<String>,
    /// Its tasks, in topological order.
    pub tasks: Vec<TaskDescription>,
}

/// One task of a packaged workflow: its specification and which hooks it has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDescription {
    /// Id, dependencies, trigger rule, retry policy, timeout.
    #[serde(flatten)]
    pub spec: TaskSpec,
    /// It has an `on_success` hook.
    #[serde(default)]
    pub on_success: bool,
    /// It has an `on_failure` hook.
    #[serde(default)]
    pub on_failure: bool,
}

/// One event trigger of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDescription {
    /// Its name.
    pub name: String,
    /// The workflow it starts.
    pub workflow: String,
    /// How often it is polled, in milliseconds.
    pub poll_interval_ms: u64,
    /// Whether runs with the same context may overlap.
    pub allow_concurrent: bool,
}

/// What the host asks a package to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Request {
    /// Run one attempt of `task` with `context` as its input.
    Task {
        /// The workflow.
        workflow: String,
        /// The task.
        task: String,
        /// The input context (a JSON object).
        context: Value,
    },
    /// Run `task`'s `on_success` hook with its output.
    OnSuccess {
        /// The workflow.
        workflow: String,
        /// The task.
        task: String,
        /// The task's output.
        context: Value,
    },
    /// Run `task`'s `on_failure` hook with the error and its input.
    OnFailure {
        /// The workflow.
        workflow: String,
        /// The task.
        task: String,
        /// Why it failed.
        error: TaskError,
        /// The task's input.
        context: Value,
    },
    /// Poll event trigger `trigger` once.
    Poll {
        /// The trigger.
        trigger: String,
    },
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The task succeeded with this output context.
    Output {
        /// The output (a JSON object).
        context: Value,
    },
    /// The task failed.
    TaskFailed {
        /// Why.
        error: TaskError,
    },
    /// A hook ran.
    HookDone,
    /// A hook failed (logged by the host; it never changes the task's outcome).
    HookFailed {
        /// Why.
        message: String,
    },
    /// A poll decided: fire (with a context, or none) or skip.
    Polled {
        /// Whether to start a run.
        fire: bool,
        /// The run's input.
        #[serde(default)]
        context: Option<Value>,
    },
    /// A poll failed.
    PollFailed {
        /// Why.
        message: String,
    },
    /// The package's code panicked; the message is the panic's.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// The call was cancelled.
    Cancelled,
    /// The request named a workflow, task or trigger the package does not have, or was not
    /// understood.
    Refused {
        /// Why.
        message: String,
    },
}
