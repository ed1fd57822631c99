//! `cloaca.Context`: the JSON document a run carries from task to task, with upstream's
//! dictionary-like methods.

use cloacina::Context;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

use crate::{from_py, to_py};

/// Data that flows through a workflow: string keys, JSON-compatible values.
#[pyclass(name = "Context", module = "cloaca", skip_from_py_object)]
#[derive(Clone, Default)]
pub(crate) struct PyContext {
    pub(crate) inner: Context<Value>,
}

impl PyContext {
    pub(crate) fn wrap(inner: Context<Value>) -> Self {
        Self { inner }
    }
}

fn missing(key: &str) -> PyErr {
    PyKeyError::new_err(key.to_owned())
}

#[pymethods]
impl PyContext {
    /// A context holding `data` (a dict with string keys), or an empty one.
    #[new]
    #[pyo3(signature = (data = None))]
    pub(crate) fn new(data: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let mut ctx = Self::default();
        if let Some(data) = data {
            ctx.update_from_dict(data)?;
        }
        Ok(ctx)
    }

    /// The value under `key`, or `default` when there is none.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(&self, py: Python<'py>, key: &str, default: Option<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.get(key) {
            Some(v) => to_py(py, v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Stores `value` under `key`, replacing what was there.
    fn set(&mut self, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.insert_or_update(key, from_py(value)?);
        Ok(())
    }

    /// Stores `value` under a new `key` (`ValueError` if the key exists).
    fn insert(&mut self, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inner.insert(key, from_py(value)?).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Replaces the value under an existing `key` (`KeyError` if there is none).
    fn update(&mut self, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = from_py(value)?;
        if !self.inner.contains_key(&key) {
            return Err(missing(&key));
        }
        self.inner.insert_or_update(key, value);
        Ok(())
    }

    /// Removes `key` and returns its value (`None` if there was none).
    fn remove<'py>(&mut self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.remove(key) {
            Some(v) => to_py(py, &v),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// Removes `key` (`KeyError` if there is none).
    fn delete(&mut self, key: &str) -> PyResult<()> {
        self.inner.remove(key).map(drop).ok_or_else(|| missing(key))
    }

    /// A new dict of every key and value.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (k, v) in self.inner.data() {
            dict.set_item(k, to_py(py, v)?)?;
        }
        Ok(dict)
    }

    /// A context holding `data`.
    #[staticmethod]
    fn from_dict(data: &Bound<'_, PyDict>) -> PyResult<Self> {
        Self::new(Some(data))
    }

    /// Sets every key of `data`.
    fn update_from_dict(&mut self, data: &Bound<'_, PyDict>) -> PyResult<()> {
        for (k, v) in data.iter() {
            self.set(k.extract()?, &v)?;
        }
        Ok(())
    }

    /// The context as a JSON object text.
    fn to_json(&self) -> PyResult<String> {
        self.inner.to_json().map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// A context from a JSON object text (`ValueError` if it is not one).
    #[staticmethod]
    fn from_json(json: String) -> PyResult<Self> {
        Context::from_json(json).map(Self::wrap).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The keys, sorted.
    fn keys(&self) -> Vec<String> {
        self.inner.keys().map(str::to_owned).collect()
    }

    fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        self.inner.get(key).map(|v| to_py(py, v)).unwrap_or_else(|| Err(missing(key)))
    }

    fn __setitem__(&mut self, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.set(key, value)
    }

    fn __delitem__(&mut self, key: &str) -> PyResult<()> {
        self.delete(key)
    }

    fn __contains__(&self, key: &str) -> bool {
        self.inner.contains_key(key)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        pyo3::types::PyList::new(py, self.keys())?.try_iter().map(Bound::into_any)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.extract::<PyRef<'_, PyContext>>().is_ok_and(|o| o.inner.data() == self.inner.data())
    }

    fn __repr__(&self) -> String {
        format!("Context({})", serde_json::Value::Object(self.inner.data().clone().into_iter().collect()))
    }
}
