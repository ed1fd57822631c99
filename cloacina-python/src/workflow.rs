//! Workflows from Python: `with cloaca.WorkflowBuilder(name) as builder:` around `@cloaca.task`
//! functions, trigger-rule helpers, and the registry runners take their workflows from.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cloacina::cloacina_workflow::workflow::{HookResult, TaskFuture};
use cloacina::cloacina_workflow::{Task, TaskSpec, TriggerRule, ValueOperator, Workflow};
use cloacina::retry::{Backoff, RetryCondition, RetryPolicy};
use cloacina::task::TaskHandle;
use cloacina::{Context, TaskError};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use serde_json::Value;

use crate::calls::{lock, on_own_thread};
use crate::context::PyContext;

/// A task defined in Python: its function and how to call it.
#[derive(Clone)]
struct PyTask {
    id: String,
    func: Arc<Py<PyAny>>,
    is_async: bool,
    /// The function takes a second parameter named `handle` or `task_handle`.
    takes_handle: bool,
}

impl Task for PyTask {
    fn run(&self, context: Context<Value>) -> TaskFuture {
        let task = self.clone();
        Box::pin(async move {
            // Taken here, inside the attempt, for the thread the function runs on.
            let handle = task.takes_handle.then(TaskHandle::current);
            on_own_thread(move || task.call(context, handle), TaskError::retryable).await
        })
    }
}

/// `cloaca.TaskHandle`: what a task taking a `handle` parameter gets (upstream's API).
#[pyclass(name = "TaskHandle", module = "cloaca")]
struct PyTaskHandle {
    inner: Mutex<Option<TaskHandle>>,
}

#[pymethods]
impl PyTaskHandle {
    /// Gives the runner back this attempt's concurrency slot, calls `condition()` every
    /// `poll_interval_ms` until it returns true, then takes a slot again and returns. The task
    /// keeps its claim meanwhile. An exception in `condition` ends the wait and is raised here.
    #[pyo3(signature = (condition, poll_interval_ms = 1000))]
    fn defer_until(&self, py: Python<'_>, condition: Py<PyAny>, poll_interval_ms: u64) -> PyResult<()> {
        let mut handle = lock(&self.inner)
            .take()
            .ok_or_else(|| PyValueError::new_err("this handle is in use or its attempt has ended"))?;
        let failed: Arc<Mutex<Option<PyErr>>> = Arc::default();
        let (condition, seen) = (Arc::new(condition), failed.clone());
        let poll = std::time::Duration::from_millis(poll_interval_ms.max(1));
        let (handle, outcome) = crate::wait(py, async move {
            let check = || {
                let (condition, seen) = (condition.clone(), seen.clone());
                async move {
                    Python::attach(|py| match condition.bind(py).call0().and_then(|r| r.is_truthy()) {
                        Ok(done) => done,
                        Err(e) => {
                            *lock(&seen) = Some(e);
                            true
                        }
                    })
                }
            };
            let outcome = handle.defer_until(check, poll).await;
            (handle, outcome)
        })?;
        *lock(&self.inner) = Some(handle);
        if let Some(e) = lock(&failed).take() {
            return Err(e);
        }
        outcome.map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
    }

    /// True while the attempt holds a concurrency slot.
    fn is_slot_held(&self) -> PyResult<bool> {
        lock(&self.inner)
            .as_ref()
            .map(TaskHandle::holds_slot)
            .ok_or_else(|| PyValueError::new_err("this handle is in use or its attempt has ended"))
    }
}

impl PyTask {
    /// One attempt: the function gets a `Context` and returns it (or `None`: the context it was
    /// given, as it left it). A coroutine function runs to completion in an event loop of its own.
    fn call(&self, context: Context<Value>, handle: Option<TaskHandle>) -> Result<Context<Value>, TaskError> {
        Python::attach(|py| {
            let run = || -> PyResult<Context<Value>> {
                let ctx = Bound::new(py, PyContext::wrap(context))?;
                let mut out = match handle {
                    Some(h) => {
                        let h = Bound::new(py, PyTaskHandle { inner: Mutex::new(Some(h)) })?;
                        self.func.bind(py).call1((ctx.clone(), h))?
                    }
                    None => self.func.bind(py).call1((ctx.clone(),))?,
                };
                if self.is_async {
                    out = py.import("asyncio")?.call_method1("run", (out,))?;
                }
                if out.is_none() {
                    return Ok(ctx.borrow().inner.clone());
                }
                let returned = out.extract::<PyRef<'_, PyContext>>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "task {} returned a {}: return the context (or None)",
                        self.id,
                        crate::type_name(&out)
                    ))
                })?;
                Ok(returned.inner.clone())
            };
            run().map_err(|e| task_error(py, &e))
        })
    }
}

/// A Python exception as the attempt's error: type, message and traceback.
fn task_error(py: Python<'_>, e: &PyErr) -> TaskError {
    let kind = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".to_owned());
    let message = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let traceback =
        e.traceback(py).and_then(|tb| tb.format().ok()).map(|tb| format!("\n{}", tb.trim_end())).unwrap_or_default();
    TaskError::retryable(format!("{kind}: {message}{traceback}"))
}

/// A workflow being defined: name, description and tasks so far.
struct Draft {
    name: String,
    description: Option<String>,
    tasks: Vec<(TaskSpec, PyTask, Hooks)>,
}

/// A task's `on_success` / `on_failure` callbacks.
#[derive(Clone, Default)]
struct Hooks {
    on_success: Option<Arc<Py<PyAny>>>,
    on_failure: Option<Arc<Py<PyAny>>>,
}

/// Builders inside `with`: `@task` adds to the innermost.
static ACTIVE: Mutex<Vec<Arc<Mutex<Draft>>>> = Mutex::new(Vec::new());
/// Tasks decorated outside any `with`, for `WorkflowBuilder.add_task`.
static LOOSE: Mutex<BTreeMap<String, (TaskSpec, PyTask, Hooks)>> = Mutex::new(BTreeMap::new());
/// Every workflow built so far, by name: what a new runner runs.
static REGISTRY: Mutex<BTreeMap<String, Workflow>> = Mutex::new(BTreeMap::new());
/// In a package's worker: the archive's content hash, part of every version built (so a new
/// archive is a new version, as for Rust packages).
static PACKAGE_SOURCE: Mutex<Option<String>> = Mutex::new(None);

/// Enters package mode: workflows built from now on carry `source` in their version, and bare
/// `@cloaca.task` decorators (outside any `with`) define tasks of `workflow`, as upstream's
/// package loader arranges. Returns the builder to [`finish_package`] after the import.
pub(crate) fn begin_package(workflow: &str, source: &str) -> PyResult<Py<PyAny>> {
    *lock(&PACKAGE_SOURCE) = Some(source.to_owned());
    let builder = PyWorkflowBuilder::new(workflow.to_owned())?;
    lock(&ACTIVE).push(builder.draft.clone());
    Python::attach(|py| Ok(Py::new(py, builder)?.into_any()))
}

/// Leaves package mode: builds the package's workflow if its bare decorators defined tasks.
pub(crate) fn finish_package(builder: &Bound<'_, PyAny>) -> PyResult<()> {
    let builder = builder.cast::<PyWorkflowBuilder>()?.borrow();
    let mut active = lock(&ACTIVE);
    if let Some(pos) = active.iter().rposition(|d| Arc::ptr_eq(d, &builder.draft)) {
        active.remove(pos);
    }
    drop(active);
    if !lock(&builder.draft).tasks.is_empty() {
        builder.build()?;
    }
    Ok(())
}

/// Whether a workflow of that name was built.
pub(crate) fn is_registered(name: &str) -> bool {
    lock(&REGISTRY).contains_key(name)
}

/// The workflows built so far.
pub(crate) fn registered() -> Vec<Workflow> {
    lock(&REGISTRY).values().cloned().collect()
}

/// A trigger rule (`cloaca.always()`, `task_success(name)`, `context_value(key, op, value)`,
/// `all_of(...)` …): when a task whose dependencies are done runs, or is Skipped.
#[pyclass(name = "TriggerRule", module = "cloaca", frozen, skip_from_py_object)]
#[derive(Clone)]
pub(crate) struct PyTriggerRule {
    rule: TriggerRule,
}

#[pymethods]
impl PyTriggerRule {
    fn __repr__(&self) -> String {
        format!("TriggerRule({})", serde_json::to_string(&self.rule).unwrap_or_default())
    }
}

fn rule(rule: TriggerRule) -> PyTriggerRule {
    PyTriggerRule { rule }
}

fn rules(args: &Bound<'_, PyTuple>) -> PyResult<Vec<TriggerRule>> {
    args.iter().map(|a| Ok(a.extract::<PyRef<'_, PyTriggerRule>>()?.rule.clone())).collect()
}

/// Run whatever the dependencies did (the default).
#[pyfunction]
fn always() -> PyTriggerRule {
    rule(TriggerRule::Always)
}

/// Run only if every dependency completed.
#[pyfunction]
fn all_dependencies_completed() -> PyTriggerRule {
    rule(TriggerRule::AllDependenciesCompleted)
}

/// Run if task `name` completed.
#[pyfunction]
fn task_success(name: String) -> PyTriggerRule {
    rule(TriggerRule::TaskSuccess { task: name })
}

/// Run if task `name` failed.
#[pyfunction]
fn task_failed(name: String) -> PyTriggerRule {
    rule(TriggerRule::TaskFailed { task: name })
}

/// Run if task `name` was skipped.
#[pyfunction]
fn task_skipped(name: String) -> PyTriggerRule {
    rule(TriggerRule::TaskSkipped { task: name })
}

/// Run if the context's `key` compares to `value` by `op` ("Equals", "NotEquals", "GreaterThan",
/// "LessThan", "Contains", "Exists", "NotExists").
#[pyfunction]
#[pyo3(signature = (key, op, value = None))]
fn context_value(key: String, op: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<PyTriggerRule> {
    let op = match op {
        "Equals" => ValueOperator::Equals,
        "NotEquals" => ValueOperator::NotEquals,
        "GreaterThan" => ValueOperator::GreaterThan,
        "LessThan" => ValueOperator::LessThan,
        "Contains" => ValueOperator::Contains,
        "Exists" => ValueOperator::Exists,
        "NotExists" => ValueOperator::NotExists,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown operator {other:?}: expected Equals, NotEquals, GreaterThan, LessThan, Contains, Exists or NotExists"
            )))
        }
    };
    let value = value.map(crate::from_py).transpose()?.unwrap_or(Value::Null);
    Ok(rule(TriggerRule::ContextValue { key, op, value }))
}

/// Run if every one of `rules` holds.
#[pyfunction]
#[pyo3(signature = (*rules))]
fn all_of(rules: &Bound<'_, PyTuple>) -> PyResult<PyTriggerRule> {
    Ok(rule(TriggerRule::All { rules: self::rules(rules)? }))
}

/// Run if any of `rules` holds.
#[pyfunction]
#[pyo3(signature = (*rules))]
fn any_of(rules: &Bound<'_, PyTuple>) -> PyResult<PyTriggerRule> {
    Ok(rule(TriggerRule::Any { rules: self::rules(rules)? }))
}

/// Run if none of `rules` holds.
#[pyfunction]
#[pyo3(signature = (*rules))]
fn none_of(rules: &Bound<'_, PyTuple>) -> PyResult<PyTriggerRule> {
    Ok(rule(TriggerRule::None { rules: self::rules(rules)? }))
}

/// What `@cloaca.task(...)` returns: applied to a function, it defines the task.
#[pyclass(module = "cloaca", frozen)]
struct TaskDecorator {
    id: Option<String>,
    dependencies: Vec<String>,
    trigger_rule: TriggerRule,
    retry: RetryPolicy,
    timeout: Option<std::time::Duration>,
    hooks: Hooks,
}

#[pymethods]
impl TaskDecorator {
    /// Defines the task in the innermost `with WorkflowBuilder(...)` (or, outside one, for a later
    /// `add_task`), and returns the function unchanged.
    fn __call__<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = func.py();
        if !func.is_callable() {
            return Err(PyTypeError::new_err("@cloaca.task() decorates a function"));
        }
        let id = match &self.id {
            Some(id) => id.clone(),
            None => func.getattr("__name__")?.extract()?,
        };
        let is_async = py.import("inspect")?.call_method1("iscoroutinefunction", (&func,))?.is_truthy()?;
        // Upstream's rule: a second parameter named `handle` or `task_handle` gets a TaskHandle.
        let takes_handle = func
            .getattr("__code__")
            .and_then(|code| {
                let count: usize = code.getattr("co_argcount")?.extract()?;
                let names: Vec<String> = code.getattr("co_varnames")?.extract()?;
                Ok(count >= 2 && matches!(names.get(1).map(String::as_str), Some("handle" | "task_handle")))
            })
            .unwrap_or(false);
        let spec = TaskSpec {
            id: id.clone(),
            dependencies: self.dependencies.clone(),
            trigger_rule: self.trigger_rule.clone(),
            retry: self.retry.clone(),
            timeout: self.timeout,
        };
        let task = PyTask { id: id.clone(), func: Arc::new(func.clone().unbind()), is_async, takes_handle };
        let entry = (spec, task, self.hooks.clone());
        match lock(&ACTIVE).last() {
            Some(draft) => lock(draft).tasks.push(entry),
            None => {
                lock(&LOOSE).insert(id, entry);
            }
        }
        Ok(func)
    }
}

fn name_of(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    match obj.extract::<String>() {
        Ok(s) => Ok(s),
        Err(_) => obj.getattr("__name__")?.extract(),
    }
}

/// Defines a task: `@cloaca.task(dependencies=["extract"], retry_attempts=3)`.
///
/// `id` defaults to the function's name; `dependencies` are task ids (or task functions).
/// Retries: `retry_attempts` (attempts in all, default 3), `retry_backoff` ("fixed", "linear",
/// "exponential"), `retry_delay_ms` (1000), `retry_max_delay_ms` (60000), `retry_jitter` (True),
/// `retry_condition` ("all", "never", "transient" or "pattern:<text>"). `trigger_rules` takes a
/// rule from `cloaca.always()` and friends; `timeout_seconds` bounds each attempt;
/// `on_success(task_id, context)` and `on_failure(task_id, error, context)` run after the outcome
/// is recorded (their errors are ignored).
#[pyfunction]
#[pyo3(signature = (
    id = None, dependencies = None, retry_attempts = None, retry_backoff = None, retry_delay_ms = None,
    retry_max_delay_ms = None, retry_condition = None, retry_jitter = None, trigger_rules = None,
    timeout_seconds = None, on_success = None, on_failure = None
))]
#[allow(clippy::too_many_arguments)]
fn task(
    id: Option<String>,
    dependencies: Option<Vec<Bound<'_, PyAny>>>,
    retry_attempts: Option<u32>,
    retry_backoff: Option<&str>,
    retry_delay_ms: Option<u64>,
    retry_max_delay_ms: Option<u64>,
    retry_condition: Option<&str>,
    retry_jitter: Option<bool>,
    trigger_rules: Option<PyRef<'_, PyTriggerRule>>,
    timeout_seconds: Option<f64>,
    on_success: Option<Bound<'_, PyAny>>,
    on_failure: Option<Bound<'_, PyAny>>,
) -> PyResult<TaskDecorator> {
    let mut retry = RetryPolicy::default();
    if let Some(n) = retry_attempts {
        if n == 0 {
            return Err(PyValueError::new_err("retry_attempts counts every attempt: at least 1"));
        }
        retry.max_attempts = n;
    }
    if let Some(b) = retry_backoff {
        retry.backoff = match b {
            "fixed" => Backoff::Fixed,
            "linear" => Backoff::Linear,
            "exponential" => Backoff::Exponential,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown retry_backoff {other:?}: expected \"fixed\", \"linear\" or \"exponential\""
                )))
            }
        };
    }
    if let Some(ms) = retry_delay_ms {
        retry.initial_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = retry_max_delay_ms {
        retry.max_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(j) = retry_jitter {
        retry.jitter = j;
    }
    if let Some(c) = retry_condition {
        retry.retry_conditions = vec![match c {
            "all" => RetryCondition::AllErrors,
            "never" => RetryCondition::Never,
            "transient" => RetryCondition::TransientOnly,
            other => match other.strip_prefix("pattern:") {
                Some(p) => RetryCondition::ErrorPattern { patterns: p.split(',').map(|s| s.trim().to_owned()).collect() },
                None => {
                    return Err(PyValueError::new_err(format!(
                        "unknown retry_condition {other:?}: expected \"all\", \"never\", \"transient\" or \"pattern:<text>\""
                    )))
                }
            },
        }];
    }
    let timeout = match timeout_seconds {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(PyValueError::new_err(format!("timeout_seconds must be a positive number, not {s}")))
        }
        Some(s) => Some(std::time::Duration::from_secs_f64(s)),
        None => None,
    };
    let hook = |h: Option<Bound<'_, PyAny>>, name: &str| -> PyResult<Option<Arc<Py<PyAny>>>> {
        match h {
            Some(h) if !h.is_callable() => Err(PyTypeError::new_err(format!("{name} must be callable"))),
            Some(h) => Ok(Some(Arc::new(h.unbind()))),
            None => Ok(None),
        }
    };
    Ok(TaskDecorator {
        id,
        dependencies: dependencies.unwrap_or_default().iter().map(name_of).collect::<PyResult<_>>()?,
        trigger_rule: trigger_rules.map(|r| r.rule.clone()).unwrap_or_default(),
        retry,
        timeout,
        hooks: Hooks { on_success: hook(on_success, "on_success")?, on_failure: hook(on_failure, "on_failure")? },
    })
}

/// A built workflow: its name, version (a hash of its structure) and tasks.
#[pyclass(name = "Workflow", module = "cloaca", frozen)]
pub(crate) struct PyWorkflow {
    inner: Workflow,
}

#[pymethods]
impl PyWorkflow {
    /// The workflow's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// The workflow's version: a hash of its tasks, dependencies and settings.
    #[getter]
    fn version(&self) -> String {
        self.inner.version().to_owned()
    }

    /// The description, if any.
    #[getter]
    fn description(&self) -> Option<String> {
        self.inner.spec().description().map(str::to_owned)
    }

    /// The task ids, in definition order.
    fn get_task_ids(&self) -> Vec<String> {
        self.inner.spec().tasks().iter().map(|t| t.id.clone()).collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Workflow(name={:?}, version={:?}, tasks={})",
            self.inner.name(),
            self.inner.version(),
            self.inner.spec().tasks().len()
        )
    }
}

/// Defines a workflow: `with cloaca.WorkflowBuilder("etl") as builder:` around its
/// `@cloaca.task` functions. Leaving the block builds and registers it (a cycle, an unknown
/// dependency or a duplicate task raises `ValueError` there).
#[pyclass(name = "WorkflowBuilder", module = "cloaca")]
struct PyWorkflowBuilder {
    draft: Arc<Mutex<Draft>>,
}

#[pymethods]
impl PyWorkflowBuilder {
    #[new]
    fn new(name: String) -> PyResult<Self> {
        if name.trim().is_empty() {
            return Err(PyValueError::new_err("a workflow name must not be empty"));
        }
        Ok(Self { draft: Arc::new(Mutex::new(Draft { name, description: None, tasks: Vec::new() })) })
    }

    /// Sets the description.
    fn description(&self, text: String) {
        lock(&self.draft).description = Some(text);
    }

    /// Adds a task decorated outside any `with` block, by id or function.
    fn add_task(&self, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = name_of(task)?;
        let entry = lock(&LOOSE)
            .remove(&id)
            .ok_or_else(|| PyValueError::new_err(format!("no @cloaca.task named {id:?} to add")))?;
        lock(&self.draft).tasks.push(entry);
        Ok(())
    }

    /// Validates the workflow, registers it (replacing one of the same name) and returns it.
    fn build(&self) -> PyResult<PyWorkflow> {
        let draft = lock(&self.draft);
        let mut builder = Workflow::builder(draft.name.clone());
        if let Some(d) = &draft.description {
            builder = builder.description(d.clone());
        }
        if let Some(source) = lock(&PACKAGE_SOURCE).clone() {
            builder = builder.source(source);
        }
        for (spec, task, hooks) in &draft.tasks {
            let id = spec.id.clone();
            builder = builder.task(spec.clone(), task.clone());
            if let Some(hook) = hooks.on_success.clone() {
                builder = builder.on_success(&id, move |task_id: String, ctx: Context<Value>| {
                    let hook = hook.clone();
                    async move {
                        call_hook(hook, move |py| Ok((task_id, PyContext::wrap(ctx)).into_pyobject(py)?.into_any()))
                            .await
                    }
                });
            }
            if let Some(hook) = hooks.on_failure.clone() {
                builder = builder.on_failure(&id, move |task_id: String, error: TaskError, ctx: Context<Value>| {
                    let hook = hook.clone();
                    async move {
                        call_hook(hook, move |py| {
                            Ok((task_id, error.to_string(), PyContext::wrap(ctx)).into_pyobject(py)?.into_any())
                        })
                        .await
                    }
                });
            }
        }
        let workflow = builder.build().map_err(|e| PyValueError::new_err(e.to_string()))?;
        lock(&REGISTRY).insert(workflow.name().to_owned(), workflow.clone());
        Ok(PyWorkflow { inner: workflow })
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        lock(&ACTIVE).push(slf.draft.clone());
        slf
    }

    #[pyo3(signature = (exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let mut active = lock(&ACTIVE);
        if let Some(pos) = active.iter().rposition(|d| Arc::ptr_eq(d, &self.draft)) {
            active.remove(pos);
        }
        drop(active);
        if exc_type.is_none_or(|t| t.is_none()) {
            self.build()?;
        }
        Ok(false)
    }
}

/// Calls a task hook on a thread of its own; its errors are logged, never raised.
async fn call_hook(
    hook: Arc<Py<PyAny>>,
    args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>> + Send + 'static,
) -> HookResult {
    let outcome = on_own_thread(
        move || {
            Python::attach(|py| {
                let args = args(py).and_then(|a| Ok(a.cast_into::<PyTuple>()?));
                args.and_then(|a| hook.bind(py).call1(a)).map(drop).map_err(|e| task_error(py, &e))
            })
        },
        TaskError::retryable,
    )
    .await;
    outcome.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
}

/// Forgets every registered workflow and trigger (for tests that define the same names again).
#[pyfunction]
fn clear_workflow_registry() {
    lock(&REGISTRY).clear();
    lock(&LOOSE).clear();
    crate::trigger::clear();
}

/// The names of the registered workflows.
#[pyfunction]
fn registered_workflows() -> Vec<String> {
    lock(&REGISTRY).keys().cloned().collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWorkflowBuilder>()?;
    m.add_class::<PyWorkflow>()?;
    m.add_class::<PyTriggerRule>()?;
    m.add_class::<TaskDecorator>()?;
    m.add_class::<PyTaskHandle>()?;
    m.add_function(wrap_pyfunction!(task, m)?)?;
    for f in [
        wrap_pyfunction!(always, m)?,
        wrap_pyfunction!(all_dependencies_completed, m)?,
        wrap_pyfunction!(task_success, m)?,
        wrap_pyfunction!(task_failed, m)?,
        wrap_pyfunction!(task_skipped, m)?,
        wrap_pyfunction!(context_value, m)?,
        wrap_pyfunction!(all_of, m)?,
        wrap_pyfunction!(any_of, m)?,
        wrap_pyfunction!(none_of, m)?,
        wrap_pyfunction!(clear_workflow_registry, m)?,
        wrap_pyfunction!(registered_workflows, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
