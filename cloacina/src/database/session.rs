//! What is done with a connection: [`establish`] opens exactly the variant the URL selected (so
//! the driver's real error reaches the user) with its per-connection setup; write transactions,
//! read snapshots and the SQLite writer queue that every write goes through.

use std::cell::RefCell;

use diesel::connection::TransactionManager;
use diesel::Connection;

use super::backend::{self, dispatch, WriterQueue};
use super::connection::{validate_schema_name, AnyConnection, ConnectOptions};
use super::{DatabaseUrl, Error, Result};

/// Opens one connection of the variant the URL selected and applies the per-connection setup.
pub fn establish(url: &DatabaseUrl, options: &ConnectOptions) -> Result<AnyConnection> {
    if let Some(schema) = &options.schema {
        if !url.backend().supports(super::BackendFeature::Schemas) {
            return Err(Error::SchemasUnsupported(url.backend()));
        }
        validate_schema_name(schema)?;
    }
    backend::establish(url, options)
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
        dispatch!(conn, begin_write())?;
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

/// Refreshes the planner's statistics of `table` on PostgreSQL (`ANALYZE`, inside the caller's
/// transaction); no-op on SQLite. `table` must be one of the schema's tables.
pub fn analyze(conn: &mut AnyConnection, table: &str) -> Result<()> {
    Ok(dispatch!(conn, analyze(table))?)
}

/// Runs the reads in `f` on one consistent snapshot of the database (PostgreSQL: a `REPEATABLE
/// READ READ ONLY` transaction; SQLite: a read transaction, which in WAL mode never blocks
/// writers), then ends the transaction. `f` must not write.
pub fn read_snapshot<T, E, F>(conn: &mut AnyConnection, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Tm = <AnyConnection as Connection>::TransactionManager;
    dispatch!(conn, begin_snapshot())?;
    let result = f(conn);
    match Tm::rollback_transaction(conn) {
        Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => result,
        Err(e) => result.and(Err(e.into())),
    }
}

/// Runs the write `f`; on SQLite, first waits in this process's queue of writers to the same file
/// (see `backend::sqlite::writer_queue`). On PostgreSQL, `f` runs as is: writers proceed in
/// parallel.
///
/// Never check out a second pooled connection to write while inside `f`: the queue is held.
pub fn serialize_writes<T, E, F>(conn: &mut AnyConnection, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Tm = <AnyConnection as Connection>::TransactionManager;
    // Inside a transaction this thread already holds the queue (re-locking would deadlock).
    if Tm::transaction_manager_status_mut(conn).transaction_depth()?.is_some() {
        return f(conn);
    }
    let queue = match CURRENT_QUEUE.with(|q| q.borrow().clone()) {
        Some(queue) => Some(queue),
        None => dispatch!(conn, writer_queue())?,
    };
    let Some(queue) = queue else { return f(conn) };
    let _turn = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(conn)
}

/// On SQLite, checkpoints the write-ahead log without waiting for anyone (`PRAGMA
/// wal_checkpoint(PASSIVE)`), outside the writer queue: writers go on meanwhile. A bulk delete
/// calls it between batches, so the log it grew is not checkpointed inside some other writer's
/// commit (the one that crosses the auto-checkpoint threshold waits for it). No-op on PostgreSQL.
pub fn checkpoint_wal(conn: &mut AnyConnection) -> Result<()> {
    Ok(dispatch!(conn, checkpoint_wal())?)
}

thread_local! {
    /// The writer queue of the database whose work this thread runs now (set by `Database::run`),
    /// so a write need not look its file up again.
    static CURRENT_QUEUE: RefCell<Option<WriterQueue>> = const { RefCell::new(None) };
}

/// Runs `f` with `queue` as this thread's writer queue (restored afterwards).
pub(crate) fn with_writer_queue<T>(queue: Option<WriterQueue>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT_QUEUE.with(|q| q.replace(queue));
    let out = f();
    CURRENT_QUEUE.with(|q| *q.borrow_mut() = previous);
    out
}

/// The writer queue of `conn`'s database (`None` on PostgreSQL).
pub(crate) fn writer_queue_of(conn: &mut AnyConnection) -> Result<Option<WriterQueue>> {
    Ok(dispatch!(conn, writer_queue())?)
}
