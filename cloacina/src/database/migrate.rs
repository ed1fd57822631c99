//! Embedded migrations: one directory per backend, the same names in the same order, picked by
//! the connection's variant at run time (`backend/postgres.rs`, `backend/sqlite.rs`).
//!
//! Safe when several processes start at once: PostgreSQL serialises migrators with an advisory
//! lock (per schema), SQLite with `BEGIN IMMEDIATE` on the database file. A database that carries
//! a migration this binary does not know was migrated by a newer Cloacina and is refused.

use super::backend::dispatch;
use super::{AnyConnection, Backend, Result};

/// Where a database stands against the migrations this binary ships.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// The backend of the database.
    pub backend: Backend,
    /// Versions applied to the database, oldest first.
    pub applied: Vec<String>,
    /// Versions this binary ships that are not applied yet, oldest first.
    pub pending: Vec<String>,
}

pub use super::backend::Applied;

/// Applies every pending migration, one after the other, and returns each with its duration,
/// oldest first.
///
/// `schema` (PostgreSQL only) is created first if it does not exist; the connection's
/// `search_path` must already point at it (see [`super::ConnectOptions::schema`]).
pub fn run_pending(conn: &mut AnyConnection, schema: Option<&str>) -> Result<Vec<Applied>> {
    dispatch!(conn, run_migrations(schema))
}

/// Reports applied and pending migrations without changing anything (not even creating
/// Diesel's bookkeeping table in a database that was never migrated).
pub fn status(conn: &mut AnyConnection) -> Result<MigrationStatus> {
    let backend = conn.backend();
    if !dispatch!(conn, has_bookkeeping_table())? {
        return Ok(MigrationStatus { backend, applied: Vec::new(), pending: known_versions(backend)? });
    }
    let (applied, pending) = dispatch!(conn, migration_state())?;
    Ok(MigrationStatus { backend, applied, pending })
}

/// The migration versions this binary ships for `backend`, oldest first.
pub fn known_versions(backend: Backend) -> Result<Vec<String>> {
    super::backend::known_versions(backend)
}
