//! The package side of Cloacina's package ABI (`cloacina_workflow::plugin`, ADR 0011).
//!
//! A workflow package is a library crate of `#[workflow]` modules (and `#[trigger]` functions)
//! built as a `cdylib`, whose crate root says
//!
//! ```text
//! cloacina_workflow_plugin::package!();
//! ```
//!
//! That exports the six C functions a Cloacina daemon or server calls: the ABI version, a
//! description of the package's workflows, tasks and triggers, a call (run a task, a hook or a
//! trigger poll) and its cancellation, the release of a buffer, and retirement (the host holds
//! none of the package's workflows any more: its runtime's threads stop). Task code runs on the
//! package's own Tokio runtime (the package has its own copy of Tokio, which the host's runtime
//! cannot serve), so `tokio::time::sleep`, `tokio::spawn` and timers work in packaged tasks as
//! anywhere else. A panic in package code ends that call with [`Reply::Panicked`] and its
//! message; it never unwinds into the host.
//!
//! `unsafe` here is confined to the C boundary: reading the request the host passed, and handing
//! out and taking back the description buffer.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use cloacina_workflow::plugin::{
    Description, Reply, Request, TaskDescription, TriggerDescription, WorkflowDescription,
};
use cloacina_workflow::{trigger, workflow, Context, Trigger, Workflow};
use tokio::runtime::{Handle, Runtime};
use tokio::task::AbortHandle;

/// Makes this crate a Cloacina package: exports the ABI's C functions over the workflows and
/// triggers the crate's `#[workflow]` and `#[trigger]` items register. Call it once, at the crate
/// root; build the crate as a `cdylib`.
#[macro_export]
macro_rules! package {
    () => {
        /// The package ABI version this package was built for.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloacina_plugin_abi_version() -> u32 {
            $crate::ABI_VERSION
        }

        /// This package's description, as JSON.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloacina_plugin_describe(len: *mut usize) -> *mut u8 {
            // SAFETY: called by the host with a pointer to its own `usize`.
            unsafe { $crate::__private::describe(len) }
        }

        /// Releases a buffer `cloacina_plugin_describe` returned.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloacina_plugin_free(ptr: *mut u8, len: usize) {
            // SAFETY: called by the host with a buffer `cloacina_plugin_describe` returned.
            unsafe { $crate::__private::free(ptr, len) }
        }

        /// Starts a call; its reply goes to `done`.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloacina_plugin_call(
            request: *const u8,
            len: usize,
            done: $crate::DoneFn,
            token: u64,
        ) -> u64 {
            // SAFETY: called by the host with `len` readable bytes at `request`.
            unsafe { $crate::__private::call(request, len, done, token) }
        }

        /// Cancels a call.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloacina_plugin_cancel(call: u64) {
            $crate::__private::cancel(call)
        }

        /// Stops the package's runtime: the host holds none of its workflows any more.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloacina_plugin_retire() {
            $crate::__private::retire()
        }
    };
}

pub use cloacina_workflow::plugin::{DoneFn, ABI_VERSION};

/// What `package!()` expands to call; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// The description as JSON (`{"Ok": Description}` or `{"Err": why}`), in a buffer the host
    /// returns to [`free`]; `len` receives its length.
    ///
    /// # Safety
    /// `len` is null or points to a writable `usize`.
    pub unsafe fn describe(len: *mut usize) -> *mut u8 {
        let described = std::panic::catch_unwind(description).unwrap_or_else(|p| Err(panic_message(&*p)));
        let bytes = serde_json::to_vec(&described).unwrap_or_else(|_| b"{\"Err\":\"unserializable\"}".to_vec());
        let boxed = bytes.into_boxed_slice();
        if !len.is_null() {
            // SAFETY: the host passes a pointer to a `usize` it owns for the duration of the call.
            unsafe { *len = boxed.len() };
        }
        Box::into_raw(boxed).cast::<u8>()
    }

    /// Frees a buffer [`describe`] returned.
    ///
    /// # Safety
    /// `ptr` and `len` are a buffer [`describe`] returned, handed back once.
    pub unsafe fn free(ptr: *mut u8, len: usize) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: `ptr` and `len` are exactly what `describe` produced from a boxed slice, and the
        // host hands each buffer back once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }

    /// Starts `request` and returns its call id; the reply goes to `done(token, …)` once.
    ///
    /// # Safety
    /// `request` is null or points to `len` readable bytes, valid until this returns.
    pub unsafe fn call(request: *const u8, len: usize, done: DoneFn, token: u64) -> u64 {
        let bytes: &[u8] = if request.is_null() {
            &[]
        } else {
            // SAFETY: the host passes `len` readable bytes that stay valid until this returns; they
            // are parsed before it does.
            unsafe { std::slice::from_raw_parts(request, len) }
        };
        match std::panic::catch_unwind(|| start(bytes, done, token)) {
            Ok(id) => id,
            Err(p) => {
                answer(done, token, &Reply::Panicked { message: panic_message(&*p) });
                0
            }
        }
    }

    /// Cancels call `id` if it has not replied yet.
    pub fn cancel(id: u64) {
        if let Some(handle) = calls().lock().unwrap_or_else(PoisonError::into_inner).remove(&id) {
            handle.abort();
        }
    }

    /// Stops the runtime without waiting for its threads (they end on their own); the next call,
    /// if the host opens the library again, starts a new one.
    pub fn retire() {
        let stopped = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(runtime) = stopped {
            runtime.shutdown_background();
        }
    }
}

/// The package's runtime while the host uses the package: started by the first call, stopped by
/// [`__private::retire`].
static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// A handle on the package's runtime (started if it is not running): as many workers as the
/// machine has processors (at least two), or `CLOACINA_PACKAGE_THREADS`.
fn runtime() -> Result<Handle, String> {
    let mut running = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = running.as_ref() {
        return Ok(runtime.handle().clone());
    }
    let threads = std::env::var("CLOACINA_PACKAGE_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().max(2)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("cloacina-package")
        .enable_time()
        .build()
        .map_err(|e| format!("the package could not start its runtime: {e}"))?;
    let handle = runtime.handle().clone();
    *running = Some(runtime);
    Ok(handle)
}

fn calls() -> &'static Mutex<HashMap<u64, AbortHandle>> {
    static CALLS: OnceLock<Mutex<HashMap<u64, AbortHandle>>> = OnceLock::new();
    CALLS.get_or_init(Mutex::default)
}

/// The package's workflows by name, built once.
fn workflows() -> &'static HashMap<String, Workflow> {
    static WORKFLOWS: OnceLock<HashMap<String, Workflow>> = OnceLock::new();
    WORKFLOWS.get_or_init(|| workflow::registered().into_iter().map(|w| (w.name().to_owned(), w)).collect())
}

/// The package's event triggers by name.
fn triggers() -> &'static HashMap<String, Trigger> {
    static TRIGGERS: OnceLock<HashMap<String, Trigger>> = OnceLock::new();
    TRIGGERS.get_or_init(|| trigger::registered().into_iter().map(|t| (t.name().to_owned(), t)).collect())
}

fn description() -> Result<Description, String> {
    let mut workflows: Vec<WorkflowDescription> = workflows()
        .values()
        .map(|w| {
            let spec = w.spec();
            let tasks = spec
                .tasks()
                .iter()
                .map(|t| {
                    let hooks = w.task_hooks(&t.id);
                    TaskDescription {
                        spec: t.clone(),
                        on_success: hooks.is_some_and(|h| h.on_success.is_some()),
                        on_failure: hooks.is_some_and(|h| h.on_failure.is_some()),
                    }
                })
                .collect();
            WorkflowDescription {
                name: spec.name().to_owned(),
                description: spec.description().map(str::to_owned),
                author: spec.author().map(str::to_owned),
                tasks,
            }
        })
        .collect();
    workflows.sort_by(|a, b| a.name.cmp(&b.name));
    let mut triggers: Vec<TriggerDescription> = triggers()
        .values()
        .map(|t| TriggerDescription {
            name: t.name().to_owned(),
            workflow: t.workflow().to_owned(),
            poll_interval_ms: u64::try_from(t.poll_interval().as_millis()).unwrap_or(u64::MAX),
            allow_concurrent: t.allows_concurrent(),
        })
        .collect();
    triggers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Description { abi_version: ABI_VERSION, workflows, triggers, cron_triggers: trigger::cron_triggers() })
}

fn start(bytes: &[u8], done: DoneFn, token: u64) -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let request: Request = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => {
            answer(done, token, &Reply::Refused { message: format!("not a request this package understands: {e}") });
            return 0;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(message) => {
            answer(done, token, &Reply::Refused { message });
            return 0;
        }
    };
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let work = rt.spawn(serve(request));
    calls().lock().unwrap_or_else(PoisonError::into_inner).insert(id, work.abort_handle());
    rt.spawn(async move {
        let reply = match work.await {
            Ok(reply) => reply,
            Err(e) if e.is_panic() => Reply::Panicked { message: panic_message(&*e.into_panic()) },
            Err(_) => Reply::Cancelled,
        };
        calls().lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        answer(done, token, &reply);
    });
    id
}

async fn serve(request: Request) -> Reply {
    let refused = |message: String| Reply::Refused { message };
    match request {
        Request::Task { workflow, task, context } => {
            let Some(code) = workflows().get(&workflow).and_then(|w| w.task_code(&task)) else {
                return refused(format!("this package has no task `{task}` in workflow `{workflow}`"));
            };
            let input = match Context::from_value(context) {
                Ok(c) => c,
                Err(e) => return refused(format!("the input is not a context: {e}")),
            };
            match code.run(input).await {
                Ok(output) => Reply::Output { context: output.to_value() },
                Err(error) => Reply::TaskFailed { error },
            }
        }
        Request::OnSuccess { workflow, task, context } => {
            let hook = workflows().get(&workflow).and_then(|w| w.task_hooks(&task)).and_then(|h| h.on_success.clone());
            let (Some(hook), Ok(output)) = (hook, Context::from_value(context)) else {
                return refused(format!("no on_success hook for `{task}` in workflow `{workflow}`"));
            };
            hooked(hook(task, output).await)
        }
        Request::OnFailure { workflow, task, error, context } => {
            let hook = workflows().get(&workflow).and_then(|w| w.task_hooks(&task)).and_then(|h| h.on_failure.clone());
            let (Some(hook), Ok(input)) = (hook, Context::from_value(context)) else {
                return refused(format!("no on_failure hook for `{task}` in workflow `{workflow}`"));
            };
            hooked(hook(task, error, input).await)
        }
        Request::Poll { trigger } => {
            let Some(t) = triggers().get(&trigger) else {
                return refused(format!("this package has no trigger `{trigger}`"));
            };
            match t.poll().await {
                Ok(result) => {
                    let fire = result.should_fire();
                    Reply::Polled { fire, context: result.into_context().map(|c| c.to_value()) }
                }
                Err(e) => Reply::PollFailed { message: e.to_string() },
            }
        }
    }
}

fn hooked(result: workflow::HookResult) -> Reply {
    match result {
        Ok(()) => Reply::HookDone,
        Err(e) => Reply::HookFailed { message: e.to_string() },
    }
}

fn answer(done: DoneFn, token: u64, reply: &Reply) {
    let bytes = serde_json::to_vec(reply)
        .unwrap_or_else(|_| br#"{"reply":"refused","message":"the reply could not be written"}"#.to_vec());
    done(token, bytes.as_ptr(), bytes.len());
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
