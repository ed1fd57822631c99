//! `cloaca.DatabaseAdmin`: tenants on PostgreSQL (a schema and a login role each).

use cloacina::database::admin::{AdminError, DatabaseAdmin, TenantConfig, TenantCredentials};
use cloacina::{Database, DatabaseConfig};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::wait;

fn admin_error(e: AdminError) -> PyErr {
    match e {
        AdminError::InvalidConfig { .. } | AdminError::NotPostgres => PyValueError::new_err(e.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}

/// A tenant to create: its schema, login role and password (empty: a random one is generated).
#[pyclass(name = "TenantConfig", module = "cloaca", get_all, set_all, skip_from_py_object)]
#[derive(Clone)]
struct PyTenantConfig {
    schema_name: String,
    username: String,
    password: String,
}

#[pymethods]
impl PyTenantConfig {
    #[new]
    #[pyo3(signature = (schema_name, username, password = String::new()))]
    fn new(schema_name: String, username: String, password: String) -> Self {
        Self { schema_name, username, password }
    }

    fn __repr__(&self) -> String {
        format!("TenantConfig(schema_name={:?}, username={:?}, password=***)", self.schema_name, self.username)
    }
}

/// What `create_tenant` returns. `password` and `connection_string` hold the tenant's password:
/// hand them over, never log them (`repr` hides it).
#[pyclass(name = "TenantCredentials", module = "cloaca", get_all, frozen)]
struct PyTenantCredentials {
    username: String,
    password: String,
    schema_name: String,
    connection_string: String,
}

#[pymethods]
impl PyTenantCredentials {
    fn __repr__(&self) -> String {
        format!("TenantCredentials(schema_name={:?}, username={:?}, password=***)", self.schema_name, self.username)
    }
}

impl From<TenantCredentials> for PyTenantCredentials {
    fn from(c: TenantCredentials) -> Self {
        Self {
            username: c.username,
            password: c.password,
            schema_name: c.schema_name,
            connection_string: c.connection_string,
        }
    }
}

/// Provisions tenants on a PostgreSQL database, connecting with an administrator's URL.
#[pyclass(name = "DatabaseAdmin", module = "cloaca")]
struct PyDatabaseAdmin {
    inner: std::sync::Arc<DatabaseAdmin>,
}

#[pymethods]
impl PyDatabaseAdmin {
    #[new]
    fn new(py: Python<'_>, database_url: &str) -> PyResult<Self> {
        let url = database_url.to_owned();
        let db = py
            .detach(|| {
                Database::connect_with(&url, DatabaseConfig { migrate: false, pool_size: 2, ..Default::default() })
            })
            .map_err(|e| crate::engine_error(e.into()))?;
        Ok(Self { inner: std::sync::Arc::new(DatabaseAdmin::new(db)) })
    }

    /// Creates the tenant's schema (migrated), login role and grants.
    fn create_tenant(&self, py: Python<'_>, config: PyRef<'_, PyTenantConfig>) -> PyResult<PyTenantCredentials> {
        let admin = self.inner.clone();
        let config = TenantConfig {
            schema_name: config.schema_name.clone(),
            username: config.username.clone(),
            password: config.password.clone(),
        };
        let created = wait(py, async move { admin.create_tenant(config).await })?.map_err(admin_error)?;
        Ok(created.into())
    }

    /// Drops the tenant's schema (with its data) and login role.
    fn remove_tenant(&self, py: Python<'_>, schema_name: &str, username: &str) -> PyResult<()> {
        let admin = self.inner.clone();
        let (schema, user) = (schema_name.to_owned(), username.to_owned());
        wait(py, async move { admin.remove_tenant(&schema, &user).await })?.map_err(admin_error)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDatabaseAdmin>()?;
    m.add_class::<PyTenantConfig>()?;
    m.add_class::<PyTenantCredentials>()?;
    Ok(())
}
