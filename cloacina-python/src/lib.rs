//! `cloaca`: Cloacina's engine as a Python extension module.
//!
//! One module carries both backends; `DefaultRunner("sqlite://…")` or
//! `DefaultRunner("postgres://…")` picks one at run time. The Python API follows upstream
//! Cloacina's `cloaca` package (`WorkflowBuilder`, `@task`, `Context`, `DefaultRunner`, cron,
//! `DatabaseAdmin`).
//!
//! Threads: the engine runs on a Tokio runtime of its own. Python code never runs on it: a Python
//! task runs on a thread started for its attempt, holding the GIL only while Python code runs, and
//! every call that waits for the engine releases the GIL (checking for Ctrl-C meanwhile).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::{PyConnectionError, PyLookupError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::Value;

mod admin;
mod calls;
mod context;
mod package;
mod runner;
mod trigger;
mod workflow;

/// The engine's runtime, started on first use and kept for the life of the process.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("cloaca-engine")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the engine's runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs `fut` on the engine's runtime with the GIL released, checking every 100 ms for a signal
/// (Ctrl-C raises `KeyboardInterrupt` here, and `fut` is dropped).
fn wait<T: Send>(py: Python<'_>, fut: impl Future<Output = T> + Send) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| {
        rt.block_on(async {
            tokio::pin!(fut);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    out = &mut fut => return Ok(out),
                    _ = tick.tick() => Python::attach(|py| py.check_signals())?,
                }
            }
        })
    })
}

/// An engine error as the Python exception of its class: bad input is `ValueError`, an
/// unreachable or busy database `ConnectionError`, anything else `RuntimeError`. Messages come
/// from the engine, which never puts a password in one.
fn engine_error(e: cloacina::Error) -> PyErr {
    match e.kind() {
        cloacina::ErrorKind::InvalidInput => match e {
            cloacina::Error::ExecutionNotFound(_) | cloacina::Error::ScheduleNotFound(_) => {
                PyLookupError::new_err(e.to_string())
            }
            _ => PyValueError::new_err(e.to_string()),
        },
        cloacina::ErrorKind::Unavailable => PyConnectionError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// A JSON value as the Python object `json.loads` would give.
fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A Python object as JSON: `None`, `bool`, `int` (64-bit), `float` (finite), `str`, `list`,
/// `tuple` and `dict` with `str` keys; anything else is a `TypeError` naming the type.
fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyValueError::new_err(format!("{obj} does not fit in 64 bits: store it as a string")));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return serde_json::Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{} is not a JSON number", f.value())));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|item| from_py(&item)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|item| from_py(&item)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = serde_json::Map::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err(format!("context keys must be strings, not {}", type_name(&k))))?;
            map.insert(key.to_cow()?.into_owned(), from_py(&v)?);
        }
        return Ok(Value::Object(map));
    }
    Err(PyTypeError::new_err(format!(
        "a {} cannot be stored in a context: use None, bool, int, float, str, list, tuple or dict",
        type_name(obj)
    )))
}

/// The name of an object's type, for messages.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned())
}

/// The `cloaca` module.
#[pymodule]
fn cloaca(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<context::PyContext>()?;
    workflow::register(m)?;
    runner::register(m)?;
    trigger::register(m)?;
    package::register(m)?;
    admin::register(m)?;
    Ok(())
}
