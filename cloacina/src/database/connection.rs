//! `AnyConnection`: one Diesel connection type over PostgreSQL and SQLite, chosen at run time.
//!
//! The backend is decided by [`DatabaseUrl::parse`]; this module establishes exactly that variant
//! (so the driver's real error reaches the user), applies per-connection setup, and owns the
//! few places where the two backends need different SQL around a transaction.

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::Connection;

use super::{Backend, DatabaseUrl, Error, Result};

mod generated {
    //! Holds the `MultiConnection` derive, whose generated helper items carry no docs.
    #![allow(missing_docs, unreachable_pub)]

    /// A connection to whichever backend the URL selected.
    ///
    /// Queries written with Diesel's DSL against [`crate::database::schema`] run through it
    /// unchanged; the generated `MultiBackend` dispatches to the inner connection.
    #[derive(diesel::MultiConnection)]
    pub enum AnyConnection {
        /// A PostgreSQL connection (libpq).
        #[cfg(feature = "postgres")]
        Postgres(diesel::PgConnection),
        /// A SQLite connection (bundled SQLite).
        #[cfg(feature = "sqlite")]
        Sqlite(diesel::SqliteConnection),
    }
}
pub use generated::{AnyConnection, MultiBackend};

/// Evaluates `$body` with `$c` bound to the inner, backend-typed connection.
///
/// For Diesel features that do not compile through `MultiBackend` (batch inserts, `ON CONFLICT`):
/// the expression is written once and compiled for each backend.
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

/// Per-connection settings applied by [`establish`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long to wait for a PostgreSQL server to accept the connection.
    pub connect_timeout: Duration,
    /// How long a SQLite statement waits for another writer's lock before failing.
    pub busy_timeout: Duration,
    /// PostgreSQL schema to use for every table (`search_path`); `None` uses the server default.
    pub schema: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), busy_timeout: Duration::from_secs(5), schema: None }
    }
}

/// Checks a PostgreSQL schema name: 1 to 63 characters of `a-z`, `0-9`, `_`, not starting with a digit.
///
/// Validated names are interpolated into `SET search_path` and `CREATE SCHEMA`, so nothing else passes.
pub fn validate_schema_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName(name.to_owned()))
    }
}

/// Opens one connection of the variant the URL selected and applies the per-connection setup.
pub fn establish(url: &DatabaseUrl, options: &ConnectOptions) -> Result<AnyConnection> {
    if let Some(schema) = &options.schema {
        if !url.backend().supports(super::BackendFeature::Schemas) {
            return Err(Error::SchemasUnsupported(url.backend()));
        }
        validate_schema_name(schema)?;
    }
    // libpq's messages span several lines; keep the error on one.
    let connect_error = |reason: String| Error::Connect {
        url: url.redacted(),
        reason: url.scrub(&reason.split_whitespace().collect::<Vec<_>>().join(" ")),
    };
    match url.backend() {
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let target = with_connect_timeout(url.connect_string(), options.connect_timeout);
            let mut conn = diesel::PgConnection::establish(&target).map_err(|e| connect_error(e.to_string()))?;
            if let Some(schema) = &options.schema {
                conn.batch_execute(&format!("SET search_path TO \"{schema}\""))
                    .map_err(|e| connect_error(e.to_string()))?;
            }
            Ok(AnyConnection::Postgres(conn))
        }
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let mut conn =
                diesel::SqliteConnection::establish(url.connect_string()).map_err(|e| connect_error(e.to_string()))?;
            // busy_timeout first, so the other PRAGMAs already wait for locks. One PRAGMA per statement.
            let pragmas = [
                format!("PRAGMA busy_timeout = {}", options.busy_timeout.as_millis()),
                "PRAGMA journal_mode = WAL".to_owned(),
                "PRAGMA synchronous = NORMAL".to_owned(),
                "PRAGMA foreign_keys = ON".to_owned(),
            ];
            for pragma in &pragmas {
                run_pragma(&mut conn, pragma, options.busy_timeout).map_err(|e| connect_error(e.to_string()))?;
            }
            Ok(AnyConnection::Sqlite(conn))
        }
        #[allow(unreachable_patterns)]
        other => Err(Error::BackendNotCompiled { backend: other }),
    }
}

/// Runs one setup PRAGMA, retrying for up to the busy timeout.
///
/// Switching a new file to WAL needs an exclusive lock and can fail at once, without going through
/// the busy handler, when several processes open the file together; the switch is persistent, so
/// trying again is enough. Diesel gives no error code for that case (SQLITE_BUSY arrives as an
/// unknown error kind), so every failure is retried until the deadline and the last one reported:
/// a lasting failure (a read-only file, say) costs at most the busy timeout.
#[cfg(feature = "sqlite")]
fn run_pragma(conn: &mut diesel::SqliteConnection, pragma: &str, busy_timeout: Duration) -> diesel::QueryResult<()> {
    let deadline = std::time::Instant::now() + busy_timeout;
    loop {
        match conn.batch_execute(pragma) {
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            other => return other,
        }
    }
}

/// Adds libpq's `connect_timeout` (whole seconds, at least 2 as libpq requires) unless the URL sets one.
#[cfg(feature = "postgres")]
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let secs = timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

/// Runs `f` in a transaction that holds the write lock from its first statement.
///
/// SQLite: `BEGIN IMMEDIATE`, so a transaction that reads and then writes never fails with
/// "database is locked" on the lock upgrade (a deferred `BEGIN` does, under concurrent writers),
/// inside [`serialize_writes`]. PostgreSQL: a plain `BEGIN`; row locks and conditional updates do
/// the rest.
///
/// Nested inside another transaction, `f` simply runs in it (no savepoint): an error in `f`
/// fails the whole transaction, which its caller must then return. The engine composes its
/// transactions from DAL functions that each stand alone too, and never continues after an
/// error, so savepoints would only cost two statements per nested call.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Tm = <AnyConnection as Connection>::TransactionManager;
    if Tm::transaction_manager_status_mut(conn).transaction_depth()?.is_some() {
        return f(conn);
    }
    serialize_writes(conn, |conn| {
        match conn {
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c)?,
            #[cfg(feature = "sqlite")]
            AnyConnection::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
        }
        match f(conn) {
            Ok(value) => {
                Tm::commit_transaction(conn)?;
                Ok(value)
            }
            Err(user_error) => match Tm::rollback_transaction(conn) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(user_error),
                Err(rollback_error) => Err(rollback_error.into()),
            },
        }
    })
}

/// Runs the write `f`; on SQLite, first waits in this process's queue of writers to the same file.
///
/// SQLite admits one writer at a time, and a writer that finds the file locked sleeps and retries
/// inside `busy_timeout`; under heavy contention a writer can lose every retry and fail with
/// "database is locked". Queueing the writers of one process on a mutex per file removes that race
/// (they wait without a deadline); only writers in *other* processes still meet the busy timeout.
/// On PostgreSQL, `f` runs as is: writers proceed in parallel.
///
/// Never check out a second pooled connection to write while inside `f`: the queue is held.
// In a SQLite-only build `AnyConnection` has one variant, so the `if let` below is irrefutable.
#[allow(irrefutable_let_patterns)]
pub fn serialize_writes<T, E, F>(conn: &mut AnyConnection, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    #[cfg(feature = "sqlite")]
    if let AnyConnection::Sqlite(c) = conn {
        type Tm = <diesel::SqliteConnection as Connection>::TransactionManager;
        // Inside a transaction this thread already holds the queue (re-locking would deadlock).
        if Tm::transaction_manager_status_mut(c).transaction_depth()?.is_none() {
            let queue = sqlite_writer_queue(c)?;
            let _turn = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            return f(conn);
        }
    }
    f(conn)
}

/// The writer queue of the file behind `conn` (shared by every connection of this process to it).
#[cfg(feature = "sqlite")]
fn sqlite_writer_queue(
    conn: &mut diesel::SqliteConnection,
) -> diesel::QueryResult<std::sync::Arc<std::sync::Mutex<()>>> {
    use diesel::RunQueryDsl;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

    #[derive(diesel::QueryableByName)]
    struct MainFile {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    static QUEUES: OnceLock<Mutex<HashMap<String, Weak<Mutex<()>>>>> = OnceLock::new();

    // In-memory databases report "": they have one pooled connection, so sharing a key is harmless.
    let main: MainFile =
        diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'").get_result(conn)?;
    let mut queues = QUEUES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(queue) = queues.get(&main.file).and_then(Weak::upgrade) {
        return Ok(queue);
    }
    queues.retain(|_, q| q.strong_count() > 0);
    let queue = Arc::new(Mutex::new(()));
    queues.insert(main.file, Arc::downgrade(&queue));
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["tenant_a", "t1", "_x"] {
            assert!(validate_schema_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "a-b", "Tenant", "x\"; drop table y; --", "pg_catalog", &"a".repeat(64)] {
            assert!(matches!(validate_schema_name(bad), Err(Error::InvalidSchemaName(_))), "{bad}");
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn connect_timeout_is_added_once() {
        let t = Duration::from_secs(5);
        assert_eq!(with_connect_timeout("postgres://h/db", t), "postgres://h/db?connect_timeout=5");
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=disable", t),
            "postgres://h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(with_connect_timeout("postgres://h/db?connect_timeout=9", t), "postgres://h/db?connect_timeout=9");
    }
}
