//! The backends Cloacina knows, what each can do, and the one place where PostgreSQL and SQLite
//! differ.
//!
//! `postgres.rs` and `sqlite.rs` mirror each other: the same functions, each written for its
//! backend, a documented no-op where one backend has nothing to do. This module dispatches to them
//! by the connection's variant. Nothing outside `database/backend/` matches on an `AnyConnection`
//! variant or tests the backend (a tidy test checks it); code above asks [`Backend::supports`]
//! for a capability when it must know.

use std::fmt;
use std::sync::{Arc, Mutex};

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use super::{AnyConnection, ConnectOptions, DatabaseUrl, Error, Result};

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

/// A database backend Cloacina can run on. Which one is in use is decided at run time by the
/// connection URL ([`super::DatabaseUrl::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL: production, many runner processes on many hosts sharing one database.
    Postgres,
    /// SQLite (bundled): the embedded default, one host, zero setup.
    Sqlite,
}

/// A capability that code above the database layer asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendFeature {
    /// Named schemas, so tenants can share one database in separate namespaces.
    Schemas,
    /// A process can be woken by another process's commit (`LISTEN`/`NOTIFY`); without it,
    /// runners poll for work created elsewhere.
    ListenNotify,
    /// Runners on several hosts may share one database. SQLite's locking holds only among the
    /// processes of one machine, so a runner refuses to start on a SQLite database another host's
    /// runner is using.
    MultiHost,
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

    /// Stable lowercase name, as shown by `cloacinactl db status`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The Cargo feature that compiles this backend in.
    pub fn cargo_feature(self) -> &'static str {
        self.name()
    }

    /// True when this binary was built with the backend's Cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::Sqlite => cfg!(feature = "sqlite"),
        }
    }

    /// Whether this backend has `feature`.
    pub fn supports(self, feature: BackendFeature) -> bool {
        match (self, feature) {
            (Backend::Postgres, BackendFeature::Schemas | BackendFeature::ListenNotify | BackendFeature::MultiHost) => {
                true
            }
            (Backend::Sqlite, BackendFeature::Schemas | BackendFeature::ListenNotify | BackendFeature::MultiHost) => {
                false
            }
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Evaluates `$body` with `$c` bound to the inner, backend-typed connection.
///
/// For Diesel features that do not compile through `MultiBackend` (multi-row inserts,
/// `ON CONFLICT`): the one expression is compiled for each backend. Not a backend difference, a
/// type-level one: the SQL is the same.
macro_rules! on_inner {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::database::AnyConnection::Postgres($c) => $body,
            #[cfg(feature = "sqlite")]
            $crate::database::AnyConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_inner;

/// Inserts `$rows` (a slice of `Insertable` structs that treat `None` as NULL) into `$table` as
/// fast as each backend allows: PostgreSQL `COPY … FROM STDIN` in the binary format; SQLite one
/// multi-row `INSERT` of `$values` (the same rows as tuples of column assignments: a slice of
/// structs would be one statement per row there). `$values` is evaluated only on SQLite.
macro_rules! bulk_insert {
    ($conn:expr, $table:expr, $rows:expr, $values:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::database::AnyConnection::Postgres(c) => {
                diesel::ExecuteCopyFromDsl::execute(diesel::copy_from($table).from_insertable($rows), c)
            }
            #[cfg(feature = "sqlite")]
            $crate::database::AnyConnection::Sqlite(c) => {
                diesel::RunQueryDsl::execute(diesel::insert_into($table).values($values), c)
            }
        }
    };
}
pub(crate) use bulk_insert;

/// Loads `$query` locking the rows it returns and skipping rows another transaction holds: it
/// never waits. PostgreSQL: `FOR UPDATE SKIP LOCKED`. SQLite: the query as it is, because the
/// caller's `BEGIN IMMEDIATE` already excludes every other writer.
///
/// A macro, not a function: Diesel's locking clauses cannot be named in generic bounds outside it.
macro_rules! load_skip_locked {
    ($conn:expr, $query:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::database::AnyConnection::Postgres(c) => {
                diesel::RunQueryDsl::load(diesel::QueryDsl::skip_locked(diesel::QueryDsl::for_update($query)), c)
            }
            #[cfg(feature = "sqlite")]
            $crate::database::AnyConnection::Sqlite(c) => diesel::RunQueryDsl::load($query, c),
        }
    };
}
pub(crate) use load_skip_locked;

/// Calls the function of the same name in the connection's backend module.
macro_rules! dispatch {
    ($conn:expr, $f:ident($($arg:expr),* $(,)?)) => {{
        let conn: &mut $crate::database::AnyConnection = $conn;
        #[cfg(all(feature = "postgres", feature = "sqlite"))]
        let out = if matches!(conn, $crate::database::AnyConnection::Postgres(_)) {
            $crate::database::backend::postgres::$f(conn, $($arg),*)
        } else {
            $crate::database::backend::sqlite::$f(conn, $($arg),*)
        };
        #[cfg(all(feature = "postgres", not(feature = "sqlite")))]
        let out = $crate::database::backend::postgres::$f(conn, $($arg),*);
        #[cfg(all(feature = "sqlite", not(feature = "postgres")))]
        let out = $crate::database::backend::sqlite::$f(conn, $($arg),*);
        out
    }};
}
pub(crate) use dispatch;

/// The mutex SQLite writers of one process queue on (one per database file).
pub(crate) type WriterQueue = Arc<Mutex<()>>;

/// Opens one connection of the backend the URL selected, with that backend's setup.
pub(crate) fn establish(url: &DatabaseUrl, options: &ConnectOptions) -> Result<AnyConnection> {
    match url.backend() {
        #[cfg(feature = "postgres")]
        Backend::Postgres => postgres::establish(url, options),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => sqlite::establish(url, options),
        #[allow(unreachable_patterns)]
        other => Err(Error::BackendNotCompiled { backend: other }),
    }
}

/// Announces Ready work to the runners listening on this database, with `payload`; delivered
/// when the caller's transaction commits. A no-op on SQLite.
pub(crate) fn notify_work(conn: &mut AnyConnection, payload: &str) -> Result<()> {
    Ok(dispatch!(conn, notify_work(payload))?)
}

/// Subscribes `conn`'s session to work announcements. A no-op on SQLite.
pub(crate) fn listen_work(conn: &mut AnyConnection) -> Result<()> {
    Ok(dispatch!(conn, listen_work())?)
}

/// The payloads of the work announcements `conn` received since the last call, without waiting.
pub(crate) fn take_notifications(conn: &mut AnyConnection) -> Result<Vec<String>> {
    Ok(dispatch!(conn, take_notifications())?)
}

/// The migration versions this binary ships for `backend`, oldest first.
pub(crate) fn known_versions(backend: Backend) -> Result<Vec<String>> {
    match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => postgres::known_versions(),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => sqlite::known_versions(),
        #[allow(unreachable_patterns)]
        other => Err(Error::BackendNotCompiled { backend: other }),
    }
}

/// A connection error: the redacted URL and the driver's reason on one line, scrubbed of the
/// password (libpq's messages span several lines).
fn connect_error(url: &DatabaseUrl, reason: String) -> Error {
    Error::Connect { url: url.redacted(), reason: url.scrub(&reason.split_whitespace().collect::<Vec<_>>().join(" ")) }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

fn migration_error(e: impl fmt::Display) -> Error {
    Error::Migration(e.to_string())
}

fn migration_versions<DB: DieselBackend>(set: &EmbeddedMigrations) -> Result<Vec<String>> {
    let migrations = MigrationSource::<DB>::migrations(set).map_err(migration_error)?;
    Ok(migrations.iter().map(|m| m.name().version().to_string()).collect())
}

/// Applied and pending versions; fails with [`Error::SchemaTooNew`] if the database is ahead of us.
fn inspect_migrations<DB: DieselBackend>(
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
fn apply_migrations<DB: DieselBackend, C: MigrationHarness<DB>>(
    conn: &mut C,
    set: EmbeddedMigrations,
    mut run: impl FnMut(&mut C, &dyn Migration<DB>) -> Result<String>,
) -> Result<Vec<super::migrate::Applied>> {
    inspect_migrations(conn, &set)?;
    let pending = conn.pending_migrations(set).map_err(migration_error)?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in pending {
        let started = std::time::Instant::now();
        let version = run(conn, &*migration)?;
        applied.push(super::migrate::Applied { version, took: started.elapsed() });
    }
    Ok(applied)
}

impl super::AnyConnection {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            super::AnyConnection::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            super::AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_the_documented_differences() {
        assert!(Backend::Postgres.supports(BackendFeature::Schemas));
        assert!(!Backend::Sqlite.supports(BackendFeature::Schemas));
        assert!(Backend::Postgres.supports(BackendFeature::ListenNotify));
        assert!(!Backend::Sqlite.supports(BackendFeature::ListenNotify));
        assert!(Backend::Postgres.supports(BackendFeature::MultiHost));
        assert!(!Backend::Sqlite.supports(BackendFeature::MultiHost));
    }
}
