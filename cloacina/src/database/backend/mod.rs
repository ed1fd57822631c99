//! The backends Cloacina knows, what each can do, and the one place where PostgreSQL and SQLite
//! differ.
//!
//! `postgres.rs` and `sqlite.rs` mirror each other: the same functions, each written for its
//! backend, a documented no-op where one backend has nothing to do. This module dispatches to them
//! by the connection's variant. Nothing outside `database/backend/` matches on an `AnyConnection`
//! variant or tests the backend (a tidy test checks it); code above asks [`Backend::supports`]
//! for a capability when it must know.

use super::{AnyConnection, ConnectOptions, DatabaseUrl, Error, Result};

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
mod support;

use super::kind::Backend;
pub use support::Applied;
pub(crate) use support::WriterQueue;

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

/// The announcement that a package was uploaded or deleted (in any schema: the workers of every
/// tenant look at their packages again, one cheap query). Work announcements are
/// `<schema>:<runner>`, so they never equal it.
pub(crate) const PACKAGES_CHANGED: &str = "|packages";

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

impl AnyConnection {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}
