//! Event triggers from Python (upstream's `@cloaca.trigger` and `cloaca.TriggerResult`): a poll
//! function bound to a workflow, polled by the runners that have the workflow with the Rust
//! trigger's semantics (one poll per interval across runners, fires deduplicated by context
//! hash unless `allow_concurrent`); or, with `cron=`, a cron schedule declared once by name.
//!
//! The decorated function is returned unchanged, so calling it yourself returns its
//! `TriggerResult` (upstream's tutorials do). A trigger that names no workflow is kept but not
//! polled, except in a package, where it starts the package's workflow.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloacina::trigger::{parse_poll_interval, CronTrigger, Trigger, TriggerError, TriggerResult};
use cloacina::Context;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

use crate::calls::{lock, on_own_thread};
use crate::context::PyContext;

/// `cloaca.TriggerResult`: what a poll decided.
#[pyclass(name = "TriggerResult", module = "cloaca", frozen)]
pub(crate) struct PyTriggerResult {
    fire: bool,
    context: Option<Context<Value>>,
}

#[pymethods]
impl PyTriggerResult {
    /// Start a run, with `context` (a `cloaca.Context`, a dict, or nothing) as its input.
    #[staticmethod]
    #[pyo3(signature = (context = None))]
    fn fire(context: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let context = match context {
            None => None,
            Some(c) if c.is_none() => None,
            Some(c) => Some(match c.extract::<PyRef<'_, PyContext>>() {
                Ok(ctx) => ctx.inner.clone(),
                Err(_) => {
                    let dict = c.cast::<PyDict>().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "TriggerResult.fire takes a cloaca.Context or a dict, not a {}",
                            crate::type_name(c)
                        ))
                    })?;
                    PyContext::new(Some(dict))?.inner
                }
            }),
        };
        Ok(Self { fire: true, context })
    }

    /// Nothing to do this time.
    #[staticmethod]
    fn skip() -> Self {
        Self { fire: false, context: None }
    }

    /// True for a fire.
    fn is_fire_result(&self) -> bool {
        self.fire
    }

    /// True for a skip.
    fn is_skip_result(&self) -> bool {
        !self.fire
    }

    /// The fire's context (`None` for a skip or a fire without one).
    #[getter]
    fn context(&self) -> Option<PyContext> {
        self.context.clone().map(PyContext::wrap)
    }

    fn __repr__(&self) -> String {
        if self.fire {
            "TriggerResult.fire(...)".to_owned()
        } else {
            "TriggerResult.skip()".to_owned()
        }
    }
}

/// A poll trigger defined in Python.
#[derive(Clone)]
struct PollTrigger {
    workflow: Option<String>,
    interval: Duration,
    allow_concurrent: bool,
    func: Arc<Py<PyAny>>,
}

/// Poll triggers by name, and cron declarations by name: what runners (and a package's
/// worker) take.
static POLLED: Mutex<BTreeMap<String, PollTrigger>> = Mutex::new(BTreeMap::new());
static CRON: Mutex<BTreeMap<String, CronTrigger>> = Mutex::new(BTreeMap::new());

/// Forgets every trigger (with the workflows, `cloaca.clear_workflow_registry()`).
pub(crate) fn clear() {
    lock(&POLLED).clear();
    lock(&CRON).clear();
}

/// The poll triggers to run: those bound to a workflow, and those bound to none when `default`
/// (a package's workflow) is given.
pub(crate) fn registered(default: Option<&str>) -> PyResult<Vec<Trigger>> {
    let all: Vec<(String, PollTrigger)> = lock(&POLLED).iter().map(|(n, t)| (n.clone(), t.clone())).collect();
    let mut triggers = Vec::new();
    for (name, t) in all {
        let Some(workflow) = t.workflow.clone().or_else(|| default.map(str::to_owned)) else { continue };
        let (func, trigger_name) = (t.func.clone(), name.clone());
        let poll = move || {
            let (func, name) = (func.clone(), trigger_name.clone());
            async move {
                on_own_thread(move || poll_once(&name, &func), |why| TriggerError::PollError { message: why }).await
            }
        };
        let trigger = Trigger::new(&name, workflow, t.interval, poll)
            .map_err(|e| PyValueError::new_err(e.to_string()))?
            .allow_concurrent(t.allow_concurrent);
        triggers.push(trigger);
    }
    Ok(triggers)
}

/// The cron triggers declared, those naming no workflow bound to `default`.
pub(crate) fn cron_declared(default: Option<&str>) -> Vec<CronTrigger> {
    lock(&CRON)
        .values()
        .filter_map(|c| {
            let mut c = c.clone();
            if c.workflow.is_empty() {
                c.workflow = default?.to_owned();
            }
            Some(c)
        })
        .collect()
}

/// Calls the poll function once (on the calling thread, which holds no engine thread).
fn poll_once(name: &str, func: &Py<PyAny>) -> Result<TriggerResult, TriggerError> {
    Python::attach(|py| {
        let out = func.bind(py).call0().map_err(|e| {
            let kind = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".to_owned());
            let message = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
            TriggerError::PollError { message: format!("trigger {name} raised {kind}: {message}") }
        })?;
        let result = out.extract::<PyRef<'_, PyTriggerResult>>().map_err(|_| TriggerError::PollError {
            message: format!(
                "trigger {name} returned a {}: return cloaca.TriggerResult.fire(...) or cloaca.TriggerResult.skip()",
                crate::type_name(&out)
            ),
        })?;
        Ok(if result.fire { TriggerResult::Fire(result.context.clone()) } else { TriggerResult::Skip })
    })
}

/// What `@cloaca.trigger(...)` returns: applied to the poll function.
#[pyclass(module = "cloaca", frozen)]
struct TriggerDecorator {
    name: Option<String>,
    workflow: Option<String>,
    poll_interval: Option<Duration>,
    allow_concurrent: bool,
    cron: Option<(String, String)>,
}

#[pymethods]
impl TriggerDecorator {
    fn __call__<'py>(&self, func: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err("@cloaca.trigger decorates a function"));
        }
        let name = match &self.name {
            Some(n) => n.clone(),
            None => func.getattr("__name__")?.extract::<String>()?,
        };
        cloacina::cloacina_workflow::workflow::check_name("trigger", &name)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        match &self.cron {
            Some((expression, timezone)) => {
                let declared = CronTrigger {
                    name: name.clone(),
                    workflow: self.workflow.clone().unwrap_or_default(),
                    expression: expression.clone(),
                    timezone: timezone.clone(),
                };
                lock(&CRON).insert(name, declared);
            }
            None => {
                let interval = self.poll_interval.ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "trigger {name} needs poll_interval (\"5s\", \"100ms\", \"1m\") or cron=\"<expression>\""
                    ))
                })?;
                let trigger = PollTrigger {
                    workflow: self.workflow.clone(),
                    interval,
                    allow_concurrent: self.allow_concurrent,
                    func: Arc::new(func.clone().unbind()),
                };
                lock(&POLLED).insert(name, trigger);
            }
        }
        Ok(func)
    }
}

/// `@cloaca.trigger(name=None, poll_interval=…, allow_concurrent=False, workflow=None,
/// cron=None, timezone=None)` (`on=` is `workflow=`, as in Rust's `#[trigger(on = …)]`).
#[pyfunction]
#[pyo3(signature = (name = None, poll_interval = None, allow_concurrent = false, workflow = None, on = None, cron = None, timezone = None))]
#[allow(clippy::too_many_arguments)]
fn trigger(
    name: Option<String>,
    poll_interval: Option<&Bound<'_, PyAny>>,
    allow_concurrent: bool,
    workflow: Option<String>,
    on: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
) -> PyResult<TriggerDecorator> {
    let workflow = match (workflow, on) {
        (Some(_), Some(_)) => return Err(PyValueError::new_err("give the workflow once: workflow= or on=")),
        (w, o) => w.or(o),
    };
    let poll_interval = match poll_interval {
        None => None,
        Some(p) if p.is_none() => None,
        Some(p) => Some(match p.extract::<String>() {
            Ok(text) => parse_poll_interval(&text).map_err(|e| PyValueError::new_err(e.to_string()))?,
            Err(_) => {
                let seconds: f64 = p.extract().map_err(|_| {
                    PyTypeError::new_err("poll_interval is a duration string (\"5s\", \"100ms\") or seconds")
                })?;
                Duration::try_from_secs_f64(seconds)
                    .map_err(|_| PyValueError::new_err(format!("poll_interval {seconds} is not a duration")))?
            }
        }),
    };
    let cron = match (cron, timezone, poll_interval) {
        (Some(_), _, Some(_)) => {
            return Err(PyValueError::new_err(
                "a trigger polls (poll_interval=) or follows a cron expression (cron=), not both",
            ))
        }
        (None, Some(_), _) => return Err(PyValueError::new_err("timezone= goes with cron=")),
        (Some(expression), timezone, None) => {
            let timezone = timezone.unwrap_or_else(|| "UTC".to_owned());
            cloacina::ops::schedules::check_expression(&expression, &timezone)
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            Some((expression, timezone))
        }
        (None, None, _) => None,
    };
    Ok(TriggerDecorator { name, workflow, poll_interval, allow_concurrent, cron })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTriggerResult>()?;
    m.add_function(wrap_pyfunction!(trigger, m)?)?;
    Ok(())
}
