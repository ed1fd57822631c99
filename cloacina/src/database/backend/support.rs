//! What the two backend modules share: connection and migration errors, applying and inspecting
//! a set of embedded migrations, the migration step record, the SQLite writer queue's type.

use std::fmt;
use std::sync::{Arc, Mutex};

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::database::{DatabaseUrl, Error, Result};

/// The mutex SQLite writers of one process queue on (one per database file).
pub(crate) type WriterQueue = Arc<Mutex<()>>;

/// One migration `migrate::run_pending` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its version (directory name).
    pub version: String,
    /// How long it took.
    pub took: std::time::Duration,
}

/// A connection error: the redacted URL and the driver's reason on one line, scrubbed of the
/// password (libpq's messages span several lines).
pub(super) fn connect_error(url: &DatabaseUrl, reason: String) -> Error {
    Error::Connect { url: url.redacted(), reason: url.scrub(&reason.split_whitespace().collect::<Vec<_>>().join(" ")) }
}

#[derive(diesel::QueryableByName)]
pub(super) struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub(super) n: i64,
}

pub(super) fn migration_error(e: impl fmt::Display) -> Error {
    Error::Migration(e.to_string())
}

pub(super) fn migration_versions<DB: DieselBackend>(set: &EmbeddedMigrations) -> Result<Vec<String>> {
    let migrations = MigrationSource::<DB>::migrations(set).map_err(migration_error)?;
    Ok(migrations.iter().map(|m| m.name().version().to_string()).collect())
}

/// Applied and pending versions; fails with [`Error::SchemaTooNew`] if the database is ahead of us.
pub(super) fn inspect_migrations<DB: DieselBackend>(
    conn: &mut impl MigrationHarness<DB>,
    set: &EmbeddedMigrations,
) -> Result<(Vec<String>, Vec<String>)> {
    let known = migration_versions::<DB>(set)?;
    let mut applied: Vec<String> =
        conn.applied_migrations().map_err(migration_error)?.iter().map(ToString::to_string).collect();
    applied.sort();
    let unknown: Vec<String> = applied.iter().filter(|v| !known.contains(v)).cloned().collect();
    if !unknown.is_empty() {
        return Err(Error::SchemaTooNew { unknown, latest_known: known.last().cloned().unwrap_or_default() });
    }
    let pending = known.into_iter().filter(|v| !applied.contains(v)).collect();
    Ok((applied, pending))
}

/// Applies the pending migrations of `set`, each with `run` (which returns its version).
pub(super) fn apply_migrations<DB: DieselBackend, C: MigrationHarness<DB>>(
    conn: &mut C,
    set: EmbeddedMigrations,
    mut run: impl FnMut(&mut C, &dyn Migration<DB>) -> Result<String>,
) -> Result<Vec<Applied>> {
    inspect_migrations(conn, &set)?;
    let pending = conn.pending_migrations(set).map_err(migration_error)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in pending {
        let started = std::time::Instant::now();
        let version = run(conn, &*migration)?;
        applied.push(Applied { version, took: started.elapsed() });
    }
    Ok(applied)
}
