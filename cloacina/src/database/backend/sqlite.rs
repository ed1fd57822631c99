//! SQLite's side of every backend difference. Mirrors `postgres.rs`: the same functions, called
//! through `backend::dispatch!` with connections of this backend only.
//!
//! SQLite admits one writer at a time: the engine's writes start with `BEGIN IMMEDIATE`, and the
//! writers of one process queue on a mutex per database file (see [`writer_queue`]), so row locks
//! (PostgreSQL's `FOR UPDATE`) have no counterpart here: those functions are documented no-ops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection};
use diesel::prelude::*;
use diesel_migrations::EmbeddedMigrations;
use serde_json::Value;

use crate::database::schema::{
    contexts, pipeline_executions as pe, task_execution_metadata as tem, task_executions as te,
};
use crate::database::{
    AnyConnection, ConnectOptions, DatabaseUrl, Error, Result, UniversalJson, UniversalTimestamp, UniversalUuid,
};

/// This backend's embedded migrations.
pub(crate) const MIGRATIONS: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("src/database/migrations/sqlite");

/// The native connection inside `conn` (dispatch only ever passes this backend's connections).
#[allow(irrefutable_let_patterns)] // a SQLite-only build has one variant
fn native(conn: &mut AnyConnection) -> QueryResult<&mut SqliteConnection> {
    if let AnyConnection::Sqlite(c) = conn {
        return Ok(c);
    }
    Err(diesel::result::Error::QueryBuilderError("a SQLite statement on another backend's connection".into()))
}

/// Opens a connection and applies the per-connection PRAGMAs: `busy_timeout` first (so the others
/// already wait for locks), then WAL, `synchronous = NORMAL` and foreign keys, one per statement.
pub(crate) fn establish(url: &DatabaseUrl, options: &ConnectOptions) -> Result<AnyConnection> {
    if let Some(file) = url.sqlite_file() {
        crate::database::filesystem::check_sqlite_location(&file)?;
    }
    let mut conn = SqliteConnection::establish(url.connect_string())
        .map_err(|e| super::support::connect_error(url, e.to_string()))?;
    let pragmas = [
        format!("PRAGMA busy_timeout = {}", options.busy_timeout.as_millis()),
        "PRAGMA journal_mode = WAL".to_owned(),
        "PRAGMA synchronous = NORMAL".to_owned(),
        "PRAGMA foreign_keys = ON".to_owned(),
    ];
    for pragma in &pragmas {
        run_pragma(&mut conn, pragma, options.busy_timeout)
            .map_err(|e| super::support::connect_error(url, e.to_string()))?;
    }
    Ok(AnyConnection::Sqlite(conn))
}

/// Runs one setup PRAGMA, retrying for up to the busy timeout.
///
/// Switching a new file to WAL needs an exclusive lock and can fail at once, without going through
/// the busy handler, when several processes open the file together; the switch is persistent, so
/// trying again is enough. Diesel gives no error code for that case (SQLITE_BUSY arrives as an
/// unknown error kind), so every failure is retried until the deadline and the last one reported:
/// a lasting failure (a read-only file, say) costs at most the busy timeout.
fn run_pragma(conn: &mut SqliteConnection, pragma: &str, busy_timeout: Duration) -> QueryResult<()> {
    let deadline = std::time::Instant::now().checked_add(busy_timeout);
    loop {
        match conn.batch_execute(pragma) {
            Err(_) if deadline.is_some_and(|d| std::time::Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Begins a read-write transaction with `BEGIN IMMEDIATE`: it takes the write lock at once, so a
/// transaction that reads and then writes never fails on the lock upgrade (a deferred `BEGIN`
/// does, under concurrent writers).
pub(crate) fn begin_write(conn: &mut AnyConnection) -> QueryResult<()> {
    AnsiTransactionManager::begin_transaction_sql(native(conn)?, "BEGIN IMMEDIATE")
}

/// Begins a read transaction: in WAL mode its first read fixes the snapshot every later
/// statement sees, and it never blocks writers.
pub(crate) fn begin_snapshot(conn: &mut AnyConnection) -> QueryResult<()> {
    AnsiTransactionManager::begin_transaction_sql(native(conn)?, "BEGIN DEFERRED")
}

/// No-op: SQLite's planner pages by primary key through its index without statistics.
pub(crate) fn analyze(_conn: &mut AnyConnection, _table: &str) -> QueryResult<()> {
    Ok(())
}

/// The writer queue of the file behind `conn`, shared by every connection of this process to it.
///
/// SQLite admits one writer at a time, and a writer that finds the file locked sleeps and retries
/// inside `busy_timeout`; under heavy contention a writer can lose every retry and fail with
/// "database is locked". Writers of one process queue on this mutex instead (without a deadline);
/// only writers in other processes meet the busy timeout.
pub(crate) fn writer_queue(conn: &mut AnyConnection) -> QueryResult<Option<super::support::WriterQueue>> {
    #[derive(QueryableByName)]
    struct MainFile {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    static QUEUES: OnceLock<Mutex<HashMap<String, Weak<Mutex<()>>>>> = OnceLock::new();

    // In-memory databases report "": they have one pooled connection, so sharing a key is harmless.
    let main: MainFile =
        diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'").get_result(native(conn)?)?;
    let mut queues = QUEUES.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(queue) = queues.get(&main.file).and_then(Weak::upgrade) {
        return Ok(Some(queue));
    }
    queues.retain(|_, q| q.strong_count() > 0);
    let queue = Arc::new(Mutex::new(()));
    queues.insert(main.file, Arc::downgrade(&queue));
    Ok(Some(queue))
}

/// Applies pending migrations inside one `BEGIN IMMEDIATE` transaction (the file lock serialises
/// processes migrating at once). SQLite has no schemas.
pub(crate) fn run_migrations(conn: &mut AnyConnection, schema: Option<&str>) -> Result<Vec<super::support::Applied>> {
    if schema.is_some() {
        return Err(Error::SchemasUnsupported(crate::database::Backend::Sqlite));
    }
    native(conn)?.immediate_transaction(|c| {
        super::support::apply_migrations(c, MIGRATIONS, |c, m| {
            diesel_migrations::MigrationHarness::run_migration(c, m)
                .map(|v| v.to_string())
                .map_err(super::support::migration_error)
        })
    })
}

/// Applied and pending migration versions.
pub(crate) fn migration_state(conn: &mut AnyConnection) -> Result<(Vec<String>, Vec<String>)> {
    super::support::inspect_migrations(native(conn)?, &MIGRATIONS)
}

/// The migration versions this binary ships for SQLite.
pub(crate) fn known_versions() -> Result<Vec<String>> {
    super::support::migration_versions::<diesel::sqlite::Sqlite>(&MIGRATIONS)
}

/// Whether Diesel's bookkeeping table exists (SQLite has one namespace).
pub(crate) fn has_bookkeeping_table(conn: &mut AnyConnection) -> Result<bool> {
    let found: super::support::Count = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .get_result(native(conn)?)?;
    Ok(found.n > 0)
}

/// No-op: the caller's `BEGIN IMMEDIATE` already excludes every other writer.
pub(crate) fn lock_pipelines(_conn: &mut AnyConnection, _sorted: &[UniversalUuid]) -> QueryResult<()> {
    Ok(())
}

/// Every listed row, at once: the caller's `BEGIN IMMEDIATE` already excludes every other writer.
pub(crate) fn lock_free_tasks(_conn: &mut AnyConnection, sorted: &[UniversalUuid]) -> QueryResult<Vec<UniversalUuid>> {
    Ok(sorted.to_vec())
}

/// Records a batch of fenced completions in three statements, inside the caller's write transaction: one update of
/// every row still `Running` and claimed by `runner`, then one multi-row insert each of the output
/// contexts and the metadata rows of those it completed. Returns the ids it completed.
pub(crate) fn complete_all(
    conn: &mut AnyConnection,
    runner: &str,
    outputs: &[(UniversalUuid, Value)],
    now: UniversalTimestamp,
) -> Result<Vec<UniversalUuid>> {
    struct ContextRow {
        id: UniversalUuid,
        value: UniversalJson,
        created_at: UniversalTimestamp,
        updated_at: UniversalTimestamp,
    }
    struct MetadataRow {
        id: UniversalUuid,
        task_execution_id: UniversalUuid,
        pipeline_execution_id: UniversalUuid,
        task_name: String,
        context_id: Option<UniversalUuid>,
        created_at: UniversalTimestamp,
        updated_at: UniversalTimestamp,
    }
    let ids: Vec<UniversalUuid> = outputs.iter().map(|(id, _)| *id).collect();
    let won: Vec<(UniversalUuid, UniversalUuid, String)> = diesel::update(
        te::table.filter(te::id.eq_any(&ids)).filter(te::status.eq("Running")).filter(te::claimed_by.eq(runner)),
    )
    .set((
        te::status.eq("Completed"),
        te::completed_at.eq(now),
        te::lease_expires_at.eq(None::<UniversalTimestamp>),
        te::error_details.eq(None::<String>),
        te::updated_at.eq(now),
    ))
    .returning((te::id, te::pipeline_execution_id, te::task_name))
    .get_results(native(conn)?)?;
    if won.is_empty() {
        return Ok(Vec::new());
    }
    let output_of: HashMap<UniversalUuid, &Value> = outputs.iter().map(|(id, out)| (*id, out)).collect();
    let mut context_rows = Vec::with_capacity(won.len());
    let mut metadata_rows = Vec::with_capacity(won.len());
    for (task, pipeline, task_name) in &won {
        let context_id = UniversalUuid::new_v7();
        let value = output_of.get(task).map_or(Value::Null, |v| (*v).clone());
        context_rows.push(ContextRow { id: context_id, value: UniversalJson(value), created_at: now, updated_at: now });
        metadata_rows.push(MetadataRow {
            id: UniversalUuid::new_v7(),
            task_execution_id: *task,
            pipeline_execution_id: *pipeline,
            task_name: task_name.clone(),
            context_id: Some(context_id),
            created_at: now,
            updated_at: now,
        });
    }
    // Under SQLite's 32,766 bind parameters: four per context row, seven per metadata row.
    // Rows as tuples of column values: Diesel writes a `Vec` of `#[derive(Insertable)]` rows as
    // one INSERT per row on SQLite (any field could stand for DEFAULT), tuples as one statement.
    for chunk in context_rows.chunks(1_000) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    contexts::id.eq(r.id),
                    contexts::value.eq(r.value.clone()),
                    contexts::created_at.eq(r.created_at),
                    contexts::updated_at.eq(r.updated_at),
                )
            })
            .collect();
        diesel::insert_into(contexts::table).values(values).execute(native(conn)?)?;
    }
    for chunk in metadata_rows.chunks(1_000) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    tem::id.eq(r.id),
                    tem::task_execution_id.eq(r.task_execution_id),
                    tem::pipeline_execution_id.eq(r.pipeline_execution_id),
                    tem::task_name.eq(r.task_name.as_str()),
                    tem::context_id.eq(r.context_id),
                    tem::created_at.eq(r.created_at),
                    tem::updated_at.eq(r.updated_at),
                )
            })
            .collect();
        diesel::insert_into(tem::table).values(values).execute(native(conn)?)?;
    }
    // In input order, so a caller can match them up.
    let won: std::collections::HashSet<UniversalUuid> = won.into_iter().map(|(id, _, _)| id).collect();
    Ok::<_, Error>(ids.into_iter().filter(|id| won.contains(id)).collect())
}

/// Ends a pipeline as Completed with its final context, inside the caller's write transaction;
/// returns whether this call ended it.
pub(crate) fn finish_completed(
    conn: &mut AnyConnection,
    id: UniversalUuid,
    final_context: &Value,
    now: UniversalTimestamp,
) -> Result<bool> {
    let context_id = UniversalUuid::new_v7();
    let ended = diesel::update(pe::table.find(id).filter(pe::status.eq_any(["Pending", "Running"])))
        .set((
            pe::status.eq("Completed"),
            pe::started_at.eq(crate::database::universal_types::coalesce(pe::started_at, Some(now))),
            pe::completed_at.eq(now),
            pe::updated_at.eq(now),
            pe::error_details.eq(None::<String>),
        ))
        .execute(native(conn)?)?;
    if ended == 0 {
        return Ok::<_, Error>(false);
    }
    diesel::insert_into(contexts::table)
        .values((
            contexts::id.eq(context_id),
            contexts::value.eq(UniversalJson(final_context.clone())),
            contexts::created_at.eq(now),
            contexts::updated_at.eq(now),
        ))
        .execute(native(conn)?)?;
    diesel::update(pe::table.find(id)).set(pe::final_context_id.eq(context_id)).execute(native(conn)?)?;
    Ok(true)
}

/// No-op: SQLite cannot wake another process; runners poll for work created elsewhere.
pub(crate) fn notify_work(_conn: &mut AnyConnection, _payload: &str) -> QueryResult<()> {
    Ok(())
}

/// No-op: SQLite has no notifications (the listener runs only where
/// [`BackendFeature::ListenNotify`](crate::database::BackendFeature::ListenNotify) is supported).
pub(crate) fn listen_work(_conn: &mut AnyConnection) -> QueryResult<()> {
    Ok(())
}

/// Always empty: SQLite has no notifications.
pub(crate) fn take_notifications(_conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    Ok(Vec::new())
}

/// No-op: SQLite's planner uses the claim index without statistics.
pub(crate) fn refresh_statistics(_conn: &mut AnyConnection) -> QueryResult<()> {
    Ok(())
}

/// Copies the WAL's committed pages into the database file as far as no reader needs them
/// (`PRAGMA wal_checkpoint(PASSIVE)`: it waits for no one, and writers go on meanwhile). A bulk
/// delete calls it between batches so the WAL it grew is not checkpointed by whichever writer's
/// commit crosses the auto-checkpoint threshold (that writer would wait for it).
pub(crate) fn checkpoint_wal(conn: &mut AnyConnection) -> QueryResult<()> {
    native(conn)?.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")
}
