//! `cloaca.DefaultRunner`, its configuration, results and run handles.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloacina::executor::{ExecutionHandle, ExecutionResult, WorkflowExecutor};
use cloacina::models::{CronScheduleId, PipelineExecutionId};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig, WorkflowSet};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::Value;

use crate::context::PyContext;
use crate::{engine_error, to_py, wait};

fn parse<T: FromStr>(what: &str, text: &str) -> PyResult<T> {
    text.parse().map_err(|_| PyValueError::new_err(format!("{text:?} is not a {what} id")))
}

fn json_of<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(value).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    to_py(py, &value)
}

/// Declares the settings (Python name: type = read from a `DefaultRunnerConfig`, written back).
macro_rules! settings {
    ($($name:ident: $ty:ty = |$c:ident| $get:expr, |$s:ident, $v:ident| $set:expr;)*) => {
        /// Settings of a runner, with upstream's names: keyword arguments of the constructor, and
        /// attributes to read and set.
        #[pyclass(name = "DefaultRunnerConfig", module = "cloaca", get_all, set_all, skip_from_py_object)]
        #[derive(Clone)]
        pub(crate) struct PyDefaultRunnerConfig {
            $($name: $ty,)*
        }

        const NAMES: &[&str] = &[$(stringify!($name)),*];

        impl PyDefaultRunnerConfig {
            fn of(config: &DefaultRunnerConfig) -> Self {
                Self { $($name: { let $c = config; $get },)* }
            }

            /// The engine's settings, checked.
            fn settings(&self) -> PyResult<DefaultRunnerConfig> {
                let mut config = DefaultRunnerConfig::default();
                $({ let ($s, $v) = (&mut config, self.$name.clone()); $set; })*
                config.validate().map_err(engine_error)?;
                Ok(config)
            }
        }

        #[pymethods]
        impl PyDefaultRunnerConfig {
            /// Settings from keyword arguments (the rest default); an unknown name is a
            /// `TypeError`, a value out of range a `ValueError`.
            #[new]
            #[pyo3(signature = (**kwargs))]
            fn new(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
                let mut config = Self::of(&DefaultRunnerConfig::default());
                for (k, v) in kwargs.into_iter().flat_map(|d| d.iter()) {
                    let key: String = k.extract()?;
                    match key.as_str() {
                        $(stringify!($name) => config.$name = v.extract()?,)*
                        other => return Err(PyTypeError::new_err(format!(
                            "DefaultRunnerConfig has no setting {other:?}; settings: {}", NAMES.join(", ")
                        ))),
                    }
                }
                config.settings()?;
                Ok(config)
            }

            /// The default settings.
            #[staticmethod]
            fn default() -> Self {
                Self::of(&DefaultRunnerConfig::default())
            }

            /// Every setting by name.
            fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let dict = PyDict::new(py);
                $(dict.set_item(stringify!($name), self.$name.clone())?;)*
                Ok(dict)
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                Ok(format!("DefaultRunnerConfig({})", self.to_dict(py)?))
            }
        }
    };
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

settings! {
    max_concurrent_tasks: usize = |c| c.max_concurrent_tasks, |s, v| s.max_concurrent_tasks = v;
    scheduler_poll_interval_ms: u64 = |c| ms(c.poll_interval), |s, v| s.poll_interval = Duration::from_millis(v);
    task_timeout_seconds: u64 = |c| secs(c.default_task_timeout), |s, v| s.default_task_timeout = Duration::from_secs(v);
    db_pool_size: u32 = |c| c.pool_size, |s, v| s.pool_size = v;
    enable_recovery: bool = |c| c.enable_recovery, |s, v| s.enable_recovery = v;
    enable_cron_scheduling: bool = |c| c.enable_cron, |s, v| s.enable_cron = v;
    cron_poll_interval_seconds: u64 = |c| secs(c.cron_recheck_interval), |s, v| s.cron_recheck_interval = Duration::from_secs(v);
    cron_max_catchup_executions: usize = |c| c.cron_max_catchup_executions, |s, v| s.cron_max_catchup_executions = v;
    cron_enable_recovery: bool = |c| c.cron_enable_recovery, |s, v| s.cron_enable_recovery = v;
    enable_trigger_scheduling: bool = |c| c.enable_trigger_scheduling, |s, v| s.enable_trigger_scheduling = v;
    lease_duration_ms: u64 = |c| ms(c.lease_duration), |s, v| s.lease_duration = Duration::from_millis(v);
    heartbeat_interval_ms: u64 = |c| ms(c.heartbeat_interval), |s, v| s.heartbeat_interval = Duration::from_millis(v);
    recovery_interval_ms: u64 = |c| ms(c.recovery_interval), |s, v| s.recovery_interval = Duration::from_millis(v);
    runner_name: Option<String> = |c| c.runner_name.clone(), |s, v| s.runner_name = v;
    schema: Option<String> = |c| c.schema.clone(), |s, v| s.schema = v;
}

/// The outcome of a run.
#[pyclass(name = "PipelineResult", module = "cloaca", frozen)]
pub(crate) struct PyPipelineResult {
    inner: ExecutionResult,
}

#[pymethods]
impl PyPipelineResult {
    /// "Completed", "Failed", "Cancelled" …
    #[getter]
    fn status(&self) -> String {
        self.inner.status.to_string()
    }

    /// The run's id.
    #[getter]
    fn execution_id(&self) -> String {
        self.inner.execution_id.to_string()
    }

    /// The workflow's name.
    #[getter]
    fn workflow_name(&self) -> String {
        self.inner.workflow_name.clone()
    }

    /// The final context: the input merged with every task's output when the run completed; the
    /// context of the task that completed last when it failed.
    #[getter]
    fn final_context(&self) -> PyContext {
        PyContext::wrap(self.inner.final_context.clone())
    }

    /// Why the run failed, if it did.
    #[getter]
    fn error_message(&self) -> Option<String> {
        self.inner.error_message.clone()
    }

    /// Upstream's name for `error_message`.
    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.error_message.clone()
    }

    /// When the run was created (ISO 8601).
    #[getter]
    fn start_time(&self) -> String {
        self.inner.start_time.to_rfc3339()
    }

    /// When the run ended (ISO 8601), if it has.
    #[getter]
    fn end_time(&self) -> Option<String> {
        self.inner.end_time.map(|t| t.to_rfc3339())
    }

    /// Seconds from creation to the end, if it has ended.
    #[getter]
    fn duration_seconds(&self) -> Option<f64> {
        self.inner.duration.map(|d| d.as_secs_f64())
    }

    /// One dict per task: `task_name`, `status`, `attempt_count`, `start_time`, `end_time`,
    /// `error_message`.
    #[getter]
    fn task_results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for t in &self.inner.task_results {
            let d = PyDict::new(py);
            d.set_item("task_name", &t.task_name)?;
            d.set_item("status", t.task_status.to_string())?;
            d.set_item("attempt_count", t.attempt_count)?;
            d.set_item("start_time", t.start_time.map(|x| x.to_rfc3339()))?;
            d.set_item("end_time", t.end_time.map(|x| x.to_rfc3339()))?;
            d.set_item("error_message", &t.error_message)?;
            list.append(d)?;
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        format!(
            "PipelineResult(status={}, workflow={:?}, error={})",
            self.inner.status,
            self.inner.workflow_name,
            self.inner.error_message.as_deref().unwrap_or("None")
        )
    }
}

/// A run started with `execute_async`.
#[pyclass(name = "PipelineHandle", module = "cloaca")]
struct PyPipelineHandle {
    handle: Mutex<Option<ExecutionHandle>>,
    id: PipelineExecutionId,
    runner: Arc<DefaultRunner>,
}

#[pymethods]
impl PyPipelineHandle {
    /// The run's id.
    #[getter]
    fn execution_id(&self) -> String {
        self.id.to_string()
    }

    /// The run's status now.
    fn get_status(&self, py: Python<'_>) -> PyResult<String> {
        let runner = self.runner.clone();
        let id = self.id;
        let status = wait(py, async move { runner.get_execution_status(id).await })?.map_err(engine_error)?;
        Ok(format!("{status:?}"))
    }

    /// Waits for the run to end (at most `timeout` seconds) and returns its result.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_completion(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyPipelineResult> {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("wait_for_completion was already called on this handle"))?;
        let timeout = timeout.map(Duration::from_secs_f64);
        let result = wait(py, handle.wait_for_completion_with_timeout(timeout))?.map_err(engine_error)?;
        Ok(PyPipelineResult { inner: result })
    }

    /// Cancels the run.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        runtime_cancel(py, &self.runner, self.id)
    }
}

/// A runner: connects to the database the URL names (SQLite or PostgreSQL), migrates it, and
/// runs every workflow defined so far until `shutdown()` (or the end of a `with` block).
#[pyclass(name = "DefaultRunner", module = "cloaca")]
pub(crate) struct PyDefaultRunner {
    inner: Mutex<Option<Arc<DefaultRunner>>>,
}

impl PyDefaultRunner {
    fn start(py: Python<'_>, url: &str, config: DefaultRunnerConfig) -> PyResult<Self> {
        let runner = launch(py, url, config, None)?;
        Ok(Self { inner: Mutex::new(Some(Arc::new(runner))) })
    }

    fn runner(&self) -> PyResult<Arc<DefaultRunner>> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("this runner was shut down"))
    }
}

/// Starts a run; an unknown workflow that was defined after this runner was created says so.
fn start(
    py: Python<'_>,
    runner: &Arc<DefaultRunner>,
    name: &str,
    context: cloacina::Context<serde_json::Value>,
) -> PyResult<ExecutionHandle> {
    let (starter, workflow) = (runner.clone(), name.to_owned());
    match wait(py, async move { starter.execute_async(&workflow, context).await })? {
        Ok(handle) => Ok(handle),
        Err(e @ cloacina::Error::UnknownWorkflow(_)) if crate::workflow::is_registered(name) => {
            Err(PyValueError::new_err(format!(
                "{e}: it was defined after this runner was created; a runner runs the workflows defined before it"
            )))
        }
        Err(e) => Err(engine_error(e)),
    }
}

fn context_of(context: Option<PyRef<'_, PyContext>>) -> cloacina::Context<serde_json::Value> {
    context.map(|c| c.inner.clone()).unwrap_or_default()
}

#[pymethods]
impl PyDefaultRunner {
    /// A runner on `database_url` (`sqlite://path`, `sqlite://:memory:`, `postgres://…`).
    #[new]
    #[pyo3(signature = (database_url, config = None))]
    fn new(py: Python<'_>, database_url: &str, config: Option<PyRef<'_, PyDefaultRunnerConfig>>) -> PyResult<Self> {
        let config = match config {
            Some(c) => c.settings()?,
            None => DefaultRunnerConfig::default(),
        };
        Self::start(py, database_url, config)
    }

    /// A runner with `config`.
    #[staticmethod]
    fn with_config(py: Python<'_>, database_url: &str, config: PyRef<'_, PyDefaultRunnerConfig>) -> PyResult<Self> {
        Self::start(py, database_url, config.settings()?)
    }

    /// A runner whose tables live in PostgreSQL schema `schema` (a tenant), created and migrated
    /// on first use.
    #[staticmethod]
    fn with_schema(py: Python<'_>, database_url: &str, schema: &str) -> PyResult<Self> {
        Self::start(py, database_url, DefaultRunnerConfig { schema: Some(schema.to_owned()), ..Default::default() })
    }

    /// Runs `workflow_name` with `context` and waits for its end. Ctrl-C cancels the run and
    /// raises `KeyboardInterrupt`.
    #[pyo3(signature = (workflow_name, context = None))]
    fn execute(
        &self,
        py: Python<'_>,
        workflow_name: &str,
        context: Option<PyRef<'_, PyContext>>,
    ) -> PyResult<PyPipelineResult> {
        let runner = self.runner()?;
        let handle = start(py, &runner, workflow_name, context_of(context))?;
        let id = handle.execution_id();
        match wait(py, handle.wait_for_completion()) {
            Ok(result) => Ok(PyPipelineResult { inner: result.map_err(engine_error)? }),
            Err(interrupted) => {
                // Ctrl-C (or another signal's exception): the run is cancelled, not left running.
                let _ = runtime_cancel(py, &runner, id);
                Err(interrupted)
            }
        }
    }

    /// Starts `workflow_name` and returns a handle at once.
    #[pyo3(signature = (workflow_name, context = None))]
    fn execute_async(
        &self,
        py: Python<'_>,
        workflow_name: &str,
        context: Option<PyRef<'_, PyContext>>,
    ) -> PyResult<PyPipelineHandle> {
        let runner = self.runner()?;
        let handle = start(py, &runner, workflow_name, context_of(context))?;
        Ok(PyPipelineHandle { id: handle.execution_id(), handle: Mutex::new(Some(handle)), runner })
    }

    /// Cancels run `execution_id`.
    fn cancel(&self, py: Python<'_>, execution_id: &str) -> PyResult<()> {
        runtime_cancel(py, &self.runner()?, parse("run", execution_id)?)
    }

    /// Pauses run `execution_id`: running tasks finish, no new one starts until `resume`.
    #[pyo3(signature = (execution_id, reason = None))]
    fn pause(&self, py: Python<'_>, execution_id: &str, reason: Option<String>) -> PyResult<()> {
        let (runner, id) = (self.runner()?, parse("run", execution_id)?);
        wait(py, async move { runner.pause_execution(id, reason.as_deref()).await })?.map_err(engine_error)
    }

    /// Resumes paused run `execution_id`.
    fn resume(&self, py: Python<'_>, execution_id: &str) -> PyResult<()> {
        let (runner, id) = (self.runner()?, parse("run", execution_id)?);
        wait(py, async move { runner.resume_execution(id).await })?.map_err(engine_error)
    }

    /// Runs, newest first, as dicts (`workflow_name`, `status`, at most `limit`).
    #[pyo3(signature = (workflow_name = None, limit = 100))]
    fn list_executions<'py>(
        &self,
        py: Python<'py>,
        workflow_name: Option<String>,
        limit: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.runner()?;
        let filter = cloacina::ops::runs::RunFilter { workflow_name, limit, ..Default::default() };
        let runs = wait(py, async move { runner.list_executions(filter).await })?.map_err(engine_error)?;
        json_of(py, &runs)
    }

    /// Schedules `workflow_name` by cron `cron_expression` in `timezone`; returns the schedule id.
    #[pyo3(signature = (workflow_name, cron_expression, timezone = "UTC"))]
    fn register_cron_workflow(
        &self,
        py: Python<'_>,
        workflow_name: &str,
        cron_expression: &str,
        timezone: &str,
    ) -> PyResult<String> {
        let runner = self.runner()?;
        let (w, e, t) = (workflow_name.to_owned(), cron_expression.to_owned(), timezone.to_owned());
        let id = wait(py, async move { runner.register_cron_workflow(&w, &e, &t).await })?.map_err(engine_error)?;
        Ok(id.to_string())
    }

    /// Upstream's `list_trigger_schedules`: the event triggers runners registered, as dicts
    /// (`trigger_name`, `workflow_name`, `poll_interval_ms`, `allow_concurrent`, `enabled`, …).
    #[pyo3(signature = (enabled_only = None, limit = None, offset = None))]
    fn list_trigger_schedules<'py>(
        &self,
        py: Python<'py>,
        enabled_only: Option<bool>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.runner()?;
        let list = wait(py, async move {
            runner
                .list_trigger_schedules(enabled_only.unwrap_or(false), limit.unwrap_or(100), offset.unwrap_or(0))
                .await
        })?
        .map_err(engine_error)?;
        let rows: Vec<Value> = list.iter().map(trigger_json).collect();
        to_py(py, &Value::Array(rows))
    }

    /// One event trigger as a dict, or `None` if no runner registered one of that name.
    fn get_trigger_schedule<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.runner()?;
        match wait(py, async move { runner.get_trigger_schedule(&name).await })? {
            Ok(t) => to_py(py, &trigger_json(&t)),
            Err(cloacina::Error::TriggerNotFound(_)) => Ok(py.None().into_bound(py)),
            Err(e) => Err(engine_error(e)),
        }
    }

    /// Upstream's `set_trigger_enabled`: pauses (`False`) or resumes (`True`) a trigger on every
    /// runner.
    fn set_trigger_enabled(&self, py: Python<'_>, name: String, enabled: bool) -> PyResult<()> {
        let runner = self.runner()?;
        wait(py, async move { runner.set_trigger_enabled(&name, enabled).await })?.map_err(engine_error)
    }

    /// Upstream's `get_trigger_execution_history`: the runs the trigger started, newest first, as
    /// dicts (`trigger_name`, `context_hash`, `pipeline_execution_id`, `fired_by`, `fired_at`).
    #[pyo3(signature = (name, limit = None, offset = None))]
    fn get_trigger_execution_history<'py>(
        &self,
        py: Python<'py>,
        name: String,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.runner()?;
        let history = wait(py, async move {
            runner.get_trigger_execution_history(&name, limit.unwrap_or(100), offset.unwrap_or(0)).await
        })?
        .map_err(engine_error)?;
        let rows: Vec<Value> = history
            .iter()
            .map(|e| {
                serde_json::json!({
                    "id": e.id.to_string(),
                    "trigger_name": e.trigger_name,
                    "context_hash": e.context_hash,
                    "pipeline_execution_id": e.pipeline_execution_id.map(|id| id.to_string()),
                    "fired_by": e.fired_by,
                    "fired_at": e.fired_at.to_rfc3339(),
                })
            })
            .collect();
        to_py(py, &Value::Array(rows))
    }

    /// Cron schedules as dicts.
    #[pyo3(signature = (enabled_only = None, limit = None, offset = None))]
    fn list_cron_schedules<'py>(
        &self,
        py: Python<'py>,
        enabled_only: Option<bool>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let runner = self.runner()?;
        let list = wait(py, async move {
            runner.list_cron_schedules(enabled_only.unwrap_or(false), limit.unwrap_or(100), offset.unwrap_or(0)).await
        })?
        .map_err(engine_error)?;
        json_of(py, &list)
    }

    /// One cron schedule as a dict.
    fn get_cron_schedule<'py>(&self, py: Python<'py>, schedule_id: &str) -> PyResult<Bound<'py, PyAny>> {
        let (runner, id) = (self.runner()?, parse::<CronScheduleId>("schedule", schedule_id)?);
        let schedule = wait(py, async move { runner.get_cron_schedule(id).await })?.map_err(engine_error)?;
        json_of(py, &schedule)
    }

    /// A new expression and time zone for a schedule.
    fn update_cron_schedule(
        &self,
        py: Python<'_>,
        schedule_id: &str,
        cron_expression: &str,
        timezone: &str,
    ) -> PyResult<()> {
        let (runner, id) = (self.runner()?, parse::<CronScheduleId>("schedule", schedule_id)?);
        let (e, t) = (cron_expression.to_owned(), timezone.to_owned());
        wait(py, async move { runner.update_cron_schedule(id, Some(&e), Some(&t)).await })?.map_err(engine_error)
    }

    /// Pauses (`False`) or resumes (`True`) a schedule.
    fn set_cron_schedule_enabled(&self, py: Python<'_>, schedule_id: &str, enabled: bool) -> PyResult<()> {
        let (runner, id) = (self.runner()?, parse::<CronScheduleId>("schedule", schedule_id)?);
        wait(py, async move { runner.set_cron_schedule_enabled(id, enabled).await })?.map_err(engine_error)
    }

    /// Deletes a schedule.
    fn delete_cron_schedule(&self, py: Python<'_>, schedule_id: &str) -> PyResult<()> {
        let (runner, id) = (self.runner()?, parse::<CronScheduleId>("schedule", schedule_id)?);
        wait(py, async move { runner.delete_cron_schedule(id).await })?.map_err(engine_error)
    }

    /// The fire times a schedule claimed, newest first, as dicts.
    #[pyo3(signature = (schedule_id, limit = None, offset = None))]
    fn get_cron_execution_history<'py>(
        &self,
        py: Python<'py>,
        schedule_id: &str,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (runner, id) = (self.runner()?, parse::<CronScheduleId>("schedule", schedule_id)?);
        let history =
            wait(
                py,
                async move { runner.get_cron_execution_history(id, limit.unwrap_or(100), offset.unwrap_or(0)).await },
            )?
            .map_err(engine_error)?;
        json_of(py, &history)
    }

    /// Fire times claimed since `since` (ISO 8601): `total_executions`, `successful_executions`,
    /// `lost_executions`, `success_rate` (percent).
    fn get_cron_execution_stats<'py>(&self, py: Python<'py>, since: &str) -> PyResult<Bound<'py, PyDict>> {
        let since = parse_time(since)?;
        let runner = self.runner()?;
        let stats = wait(py, async move { runner.get_cron_execution_stats(since).await })?.map_err(engine_error)?;
        let d = PyDict::new(py);
        d.set_item("total_executions", stats.total_executions)?;
        d.set_item("successful_executions", stats.successful_executions)?;
        d.set_item("lost_executions", stats.lost_executions)?;
        d.set_item("success_rate", stats.success_rate)?;
        Ok(d)
    }

    /// Stops the runner: running tasks finish (up to the shutdown timeout), then its services
    /// stop. Later calls do nothing.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let runner = self.inner.lock().unwrap_or_else(PoisonError::into_inner).take();
        match runner {
            Some(r) => wait(py, async move { r.shutdown().await })?.map_err(engine_error),
            None => Ok(()),
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<Bound<'_, PyAny>>,
        _exc: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.shutdown(py)?;
        Ok(false)
    }
}

/// Cancels a run, waiting with the GIL released.
fn runtime_cancel(py: Python<'_>, runner: &Arc<DefaultRunner>, id: PipelineExecutionId) -> PyResult<()> {
    let runner = runner.clone();
    wait(py, async move { runner.cancel_execution(id).await })?.map_err(engine_error)
}

/// An ISO 8601 time, with an offset or naive UTC (what `datetime.isoformat()` gives).
fn parse_time(text: &str) -> PyResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| PyValueError::new_err(format!("{text:?} is not an ISO 8601 time")))
}

/// Starts a runner on `url` with every workflow and trigger defined so far (triggers naming no
/// workflow start `package_workflow`, in a package's worker) and declares the cron triggers.
pub(crate) fn launch(
    py: Python<'_>,
    url: &str,
    config: DefaultRunnerConfig,
    package_workflow: Option<&str>,
) -> PyResult<DefaultRunner> {
    let workflows = crate::workflow::registered();
    let triggers = crate::trigger::registered(package_workflow)?;
    let cron_triggers = crate::trigger::cron_declared(package_workflow);
    let url = url.to_owned();
    wait(py, async move {
        let mut builder = DefaultRunner::builder(url).config(config);
        for w in workflows {
            builder = builder.workflow(w);
        }
        for t in triggers {
            builder = builder.trigger(t);
        }
        let runner = builder.build().await?;
        runner.add_workflows(WorkflowSet { cron_triggers, ..WorkflowSet::default() }).await?;
        Ok::<_, cloacina::Error>(runner)
    })?
    .map_err(engine_error)
}

/// A trigger as the dict upstream's Python API gives.
fn trigger_json(t: &cloacina::models::TriggerSchedule) -> Value {
    serde_json::json!({
        "trigger_name": t.trigger_name,
        "workflow_name": t.workflow_name,
        "poll_interval_ms": u64::try_from(t.poll_interval.as_millis()).unwrap_or(u64::MAX),
        "allow_concurrent": t.allow_concurrent,
        "enabled": t.enabled,
        "created_at": t.created_at.to_rfc3339(),
        "updated_at": t.updated_at.to_rfc3339(),
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDefaultRunner>()?;
    m.add_class::<PyDefaultRunnerConfig>()?;
    m.add_class::<PyPipelineResult>()?;
    m.add_class::<PyPipelineHandle>()?;
    Ok(())
}
