//! PostgreSQL's side of every backend difference. Mirrors `sqlite.rs`: the same functions, called
//! through `backend::dispatch!` with connections of this backend only.

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use diesel_migrations::EmbeddedMigrations;
use serde_json::Value;

use crate::database::schema::{pipeline_executions as pe, task_executions as te};
use crate::database::universal_types::{DbJson, DbTimestamp, DbUuid};
use crate::database::{
    AnyConnection, ConnectOptions, DatabaseUrl, Result, UniversalJson, UniversalTimestamp, UniversalUuid,
};

/// This backend's embedded migrations.
pub(crate) const MIGRATIONS: EmbeddedMigrations =
    diesel_migrations::embed_migrations!("src/database/migrations/postgres");

/// The migrations that build indexes on tables which may already be large, with their text.
///
/// `CREATE INDEX CONCURRENTLY` lets writers go on while the index builds, but cannot run in a
/// transaction, nor in a multi-statement query (PostgreSQL runs one as a single transaction). So
/// these migrations say `run_in_transaction = false` in their `metadata.toml` and
/// [`run_migration`] sends their statements one at a time. Diesel's `Migration` does not expose a
/// migration's text, hence this table; a test checks it against the migration directories.
const NON_TRANSACTIONAL: &[(&str, &str)] = &[
    (
        "2026-11-24-000002_task_status_by_pipeline",
        include_str!("../migrations/postgres/2026-11-24-000002_task_status_by_pipeline/up.sql"),
    ),
    (
        "2026-11-24-000003_ready_index_matches_claim_order",
        include_str!("../migrations/postgres/2026-11-24-000003_ready_index_matches_claim_order/up.sql"),
    ),
    ("2026-11-26-000006_prune_indexes", include_str!("../migrations/postgres/2026-11-26-000006_prune_indexes/up.sql")),
    (
        "2026-12-08-000011_declared_schedules",
        include_str!("../migrations/postgres/2026-12-08-000011_declared_schedules/up.sql"),
    ),
];

/// The statements of a migration script: comment lines dropped, split at `;`.
fn statements(sql: &str) -> Vec<String> {
    let code: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).map(|l| format!("{l}\n")).collect();
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The index a `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS` statement builds.
fn concurrent_index(statement: &str) -> Option<&str> {
    let rest = statement.strip_prefix("CREATE ")?;
    let rest = rest.strip_prefix("UNIQUE ").unwrap_or(rest);
    rest.strip_prefix("INDEX CONCURRENTLY IF NOT EXISTS ")?.split_whitespace().next()
}

/// Runs one pending migration: Diesel's way, in a transaction, or, for [`NON_TRANSACTIONAL`]
/// ones, statement by statement with the version recorded last. Each of those statements can run
/// again after an interruption: `IF NOT EXISTS` skips a finished index, and an interrupted
/// concurrent build (which leaves an invalid index behind) is dropped before its statement runs.
fn run_migration(c: &mut PgConnection, migration: &dyn diesel::migration::Migration<diesel::pg::Pg>) -> Result<String> {
    use diesel_migrations::MigrationHarness;
    if migration.metadata().run_in_transaction() {
        return c.run_migration(migration).map(|v| v.to_string()).map_err(super::support::migration_error);
    }
    let name = migration.name().to_string();
    let Some((_, sql)) = NON_TRANSACTIONAL.iter().find(|(n, _)| *n == name) else {
        return Err(super::support::migration_error(format!(
            "{name} runs outside a transaction but its text is not embedded"
        )));
    };
    for statement in statements(sql) {
        if let Some(index) = concurrent_index(&statement) {
            let invalid: super::support::Count = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_catalog.pg_index i \
                 JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace \
                 WHERE c.relname = $1 AND s.nspname = current_schema() AND NOT i.indisvalid",
            )
            .bind::<Text, _>(index)
            .get_result(c)?;
            if invalid.n > 0 {
                tracing::warn!(index, "dropping an invalid index an interrupted migration left, to build it again");
                c.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))?;
            }
        }
        c.batch_execute(&statement)?;
    }
    let version = migration.name().version().to_string();
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
        .bind::<Text, _>(&version)
        .execute(c)?;
    Ok(version)
}

/// The native connection inside `conn` (dispatch only ever passes this backend's connections).
#[allow(irrefutable_let_patterns)] // a PostgreSQL-only build has one variant
fn native(conn: &mut AnyConnection) -> QueryResult<&mut PgConnection> {
    if let AnyConnection::Postgres(c) = conn {
        return Ok(c);
    }
    Err(diesel::result::Error::QueryBuilderError("a PostgreSQL statement on another backend's connection".into()))
}

/// Opens a connection: libpq with a connect timeout, then the schema as `search_path`.
///
/// OpenSSL (linked statically for libpq's TLS) is initialised first, by us, without its exit
/// handler. Left to libpq, OpenSSL registers an `atexit` cleanup that frees its global state while
/// the process ends; a connection-pool thread that used TLS and exits a moment later then runs
/// OpenSSL's per-thread destructor on freed memory and the process dies of SIGSEGV after a clean
/// shutdown. Without the handler the operating system reclaims everything at exit, as usual.
pub(crate) fn establish(url: &DatabaseUrl, options: &ConnectOptions) -> Result<AnyConnection> {
    openssl_sys::init();
    let target = with_connect_timeout(url.connect_string(), options.connect_timeout);
    let mut conn = PgConnection::establish(&target).map_err(|e| super::support::connect_error(url, e.to_string()))?;
    if let Some(schema) = &options.schema {
        conn.batch_execute(&format!("SET search_path TO \"{schema}\""))
            .map_err(|e| super::support::connect_error(url, e.to_string()))?;
    }
    Ok(AnyConnection::Postgres(conn))
}

/// Adds libpq's `connect_timeout` (whole seconds, at least 2 as libpq requires) unless the URL sets one.
fn with_connect_timeout(url: &str, timeout: std::time::Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let secs = timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

/// Begins a read-write transaction: a plain `BEGIN` (row locks and conditional updates do the rest).
pub(crate) fn begin_write(conn: &mut AnyConnection) -> QueryResult<()> {
    AnsiTransactionManager::begin_transaction(native(conn)?)
}

/// Begins a read-only transaction that sees one snapshot for all its statements. Its readers page
/// through whole tables by primary key, so sequential scans are off for it: on a table whose
/// statistics are stale (just filled by a copy, not yet analysed) the planner would otherwise
/// scan and sort the whole table for every page.
pub(crate) fn begin_snapshot(conn: &mut AnyConnection) -> QueryResult<()> {
    let c = native(conn)?;
    AnsiTransactionManager::begin_transaction_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    c.batch_execute("SET LOCAL enable_seqscan = off")
}

/// Refreshes the planner's statistics of `table` (inside the caller's transaction, counting its
/// own uncommitted rows), so reading back a table just filled in bulk uses its indexes.
pub(crate) fn analyze(conn: &mut AnyConnection, table: &str) -> QueryResult<()> {
    native(conn)?.batch_execute(&format!("ANALYZE \"{table}\""))
}

/// Writers proceed in parallel on PostgreSQL: no queue (a no-op).
pub(crate) fn writer_queue(_conn: &mut AnyConnection) -> QueryResult<Option<super::support::WriterQueue>> {
    Ok(None)
}

/// Applies pending migrations under an advisory lock (per schema), creating the schema first if
/// it is missing (only then: a tenant's role may use its schema without the right to create
/// schemas, and PostgreSQL checks that right even for `CREATE SCHEMA IF NOT EXISTS`).
pub(crate) fn run_migrations(conn: &mut AnyConnection, schema: Option<&str>) -> Result<Vec<super::support::Applied>> {
    let c = native(conn)?;
    let key = advisory_lock_key(schema);
    // Polled, not waited for: a session waiting in `pg_advisory_lock` holds a snapshot, and a
    // concurrent index build by the lock holder waits for every older snapshot (a deadlock).
    let mut waited = false;
    while !diesel::select(pg_try_advisory_lock(key)).get_result::<bool>(c)? {
        if !waited {
            tracing::info!(schema = ?schema, "waiting for another process's migration");
            waited = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let result = (|| {
        if let Some(schema) = schema {
            crate::database::connection::validate_schema_name(schema)?;
            let found: super::support::Count =
                diesel::sql_query("SELECT count(*) AS n FROM pg_catalog.pg_namespace WHERE nspname = $1")
                    .bind::<Text, _>(schema)
                    .get_result(c)?;
            if found.n == 0 {
                c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
            }
        }
        super::support::apply_migrations(c, MIGRATIONS, run_migration)
    })();
    let unlocked = c.batch_execute(&format!("SELECT pg_advisory_unlock({key})"));
    let applied = result?;
    unlocked?;
    Ok(applied)
}

/// Applied and pending migration versions.
pub(crate) fn migration_state(conn: &mut AnyConnection) -> Result<(Vec<String>, Vec<String>)> {
    super::support::inspect_migrations(native(conn)?, &MIGRATIONS)
}

/// The migration versions this binary ships for PostgreSQL.
pub(crate) fn known_versions() -> Result<Vec<String>> {
    super::support::migration_versions::<diesel::pg::Pg>(&MIGRATIONS)
}

/// Whether Diesel's bookkeeping table exists in the schema this connection resolves to.
pub(crate) fn has_bookkeeping_table(conn: &mut AnyConnection) -> Result<bool> {
    let found: super::support::Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_catalog.pg_tables \
         WHERE schemaname = current_schema() AND tablename = '__diesel_schema_migrations'",
    )
    .get_result(native(conn)?)?;
    Ok(found.n > 0)
}

diesel::define_sql_function! {
    /// Takes a session advisory lock if it is free; never waits.
    fn pg_try_advisory_lock(key: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}

/// A stable advisory-lock key for "migrating this schema" (FNV-1a of a fixed prefix and the schema).
fn advisory_lock_key(schema: Option<&str>) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "cloacina.migrate.".bytes().chain(schema.unwrap_or("").bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Locks pipeline rows in ascending id order for the rest of the transaction (`FOR NO KEY UPDATE`:
/// inserts that reference the rows are not blocked).
pub(crate) fn lock_pipelines(conn: &mut AnyConnection, sorted: &[UniversalUuid]) -> QueryResult<()> {
    let _: Vec<UniversalUuid> = pe::table
        .filter(pe::id.eq_any(sorted))
        .order(pe::id.asc())
        .select(pe::id)
        .for_no_key_update()
        .load(native(conn)?)?;
    Ok(())
}

/// Locks those of the task rows no other transaction holds (ascending ids, `SKIP LOCKED`: never
/// waits) and returns them.
pub(crate) fn lock_free_tasks(conn: &mut AnyConnection, sorted: &[UniversalUuid]) -> QueryResult<Vec<UniversalUuid>> {
    te::table
        .filter(te::id.eq_any(sorted))
        .order(te::id.asc())
        .select(te::id)
        .for_no_key_update()
        .skip_locked()
        .load(native(conn)?)
}

/// Records a batch of fenced completions in one statement: a data-modifying CTE in which the
/// update (over the unnested inputs, each row still `Running` and claimed by `runner`) feeds the
/// inserts of the output contexts and metadata rows. Returns the ids it completed.
pub(crate) fn complete_all(
    conn: &mut AnyConnection,
    runner: &str,
    outputs: &[(UniversalUuid, Value)],
    now: UniversalTimestamp,
) -> Result<Vec<UniversalUuid>> {
    #[derive(QueryableByName)]
    struct Won {
        #[diesel(sql_type = DbUuid)]
        task_execution_id: UniversalUuid,
    }
    let fresh = || outputs.iter().map(|_| UniversalUuid::new_v7()).collect::<Vec<_>>();
    let won: Vec<Won> = diesel::sql_query(
        "WITH input AS ( \
             SELECT * FROM unnest($1, $2, $3, $4) AS i (task_id, context_id, metadata_id, output) \
         ), won AS ( \
             UPDATE task_executions t \
                SET status = 'Completed', completed_at = $5, lease_expires_at = NULL, \
                    error_details = NULL, updated_at = $5 \
               FROM input \
              WHERE t.id = input.task_id AND t.status = 'Running' AND t.claimed_by = $6 \
          RETURNING t.id, t.pipeline_execution_id, t.task_name, input.context_id, input.metadata_id, \
                    input.output \
         ), ctx AS ( \
             INSERT INTO contexts (id, value, created_at, updated_at) \
             SELECT context_id, output, $5, $5 FROM won \
         ) \
         INSERT INTO task_execution_metadata \
             (id, task_execution_id, pipeline_execution_id, task_name, context_id, created_at, updated_at) \
         SELECT metadata_id, id, pipeline_execution_id, task_name, context_id, $5, $5 FROM won \
         RETURNING task_execution_id",
    )
    .bind::<Array<DbUuid>, _>(outputs.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind::<Array<DbUuid>, _>(fresh())
    .bind::<Array<DbUuid>, _>(fresh())
    .bind::<Array<DbJson>, _>(outputs.iter().map(|(_, out)| UniversalJson(out.clone())).collect::<Vec<_>>())
    .bind::<DbTimestamp, _>(now)
    .bind::<Text, _>(runner)
    .load(native(conn)?)?;
    Ok(won.into_iter().map(|w| w.task_execution_id).collect())
}

/// Ends a pipeline as Completed with its final context in one statement (the conditional update
/// feeds the context insert); returns whether this call ended it.
pub(crate) fn finish_completed(
    conn: &mut AnyConnection,
    id: UniversalUuid,
    final_context: &Value,
    now: UniversalTimestamp,
) -> Result<bool> {
    let n = diesel::sql_query(
        "WITH won AS ( \
             UPDATE pipeline_executions \
                SET status = 'Completed', started_at = COALESCE(started_at, $2), completed_at = $2, \
                    updated_at = $2, error_details = NULL, final_context_id = $3 \
              WHERE id = $1 AND status IN ('Pending', 'Running') \
          RETURNING id \
         ) \
         INSERT INTO contexts (id, value, created_at, updated_at) SELECT $3, $4, $2, $2 FROM won",
    )
    .bind::<DbUuid, _>(id)
    .bind::<DbTimestamp, _>(now)
    .bind::<DbUuid, _>(UniversalUuid::new_v7())
    .bind::<DbJson, _>(UniversalJson(final_context.clone()))
    .execute(native(conn)?)?;
    Ok(n == 1)
}

/// The channel on which runners announce Ready work to each other.
const WORK_CHANNEL: &str = "cloacina_work";

/// Tells every listening runner that work became Ready: `pg_notify` on [`WORK_CHANNEL`],
/// delivered when the caller's transaction commits (and not at all if it rolls back).
pub(crate) fn notify_work(conn: &mut AnyConnection, payload: &str) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<diesel::sql_types::Text, _>(WORK_CHANNEL)
        .bind::<diesel::sql_types::Text, _>(payload)
        .execute(native(conn)?)?;
    Ok(())
}

/// Subscribes this session to [`WORK_CHANNEL`].
pub(crate) fn listen_work(conn: &mut AnyConnection) -> QueryResult<()> {
    native(conn)?.batch_execute(&format!("LISTEN {}", WORK_CHANNEL))
}

/// The payloads of the notifications received since the last call, without waiting (libpq reads
/// what the socket holds). An error means the session is gone.
pub(crate) fn take_notifications(conn: &mut AnyConnection) -> QueryResult<Vec<String>> {
    native(conn)?.notifications_iter().map(|n| n.map(|n| n.payload)).collect()
}

/// Refreshes the planner's statistics of `task_executions` (after a big pipeline was created):
/// with stale ones PostgreSQL claims by sorting every Ready row instead of reading the claim index.
pub(crate) fn refresh_statistics(conn: &mut AnyConnection) -> QueryResult<()> {
    native(conn)?.batch_execute("ANALYZE task_executions")
}

/// No-op: PostgreSQL checkpoints on its own.
pub(crate) fn checkpoint_wal(_conn: &mut AnyConnection) -> QueryResult<()> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_added_once() {
        let t = std::time::Duration::from_secs(5);
        assert_eq!(with_connect_timeout("postgres://h/db", t), "postgres://h/db?connect_timeout=5");
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=disable", t),
            "postgres://h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(with_connect_timeout("postgres://h/db?connect_timeout=9", t), "postgres://h/db?connect_timeout=9");
    }

    /// The rule for PostgreSQL migrations: an index on a table the migration did not create is
    /// built `CONCURRENTLY`, in a migration that runs outside a transaction and whose text is in
    /// [`NON_TRANSACTIONAL`] (exactly those migrations, each one statement per `;`).
    #[test]
    fn indexes_on_existing_tables_are_built_concurrently() {
        use diesel::migration::MigrationSource;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/database/migrations/postgres");
        let mut outside = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let up = std::fs::read_to_string(path.join("up.sql")).unwrap();
            let statements = statements(&up);
            let created: Vec<&str> =
                statements.iter().filter_map(|s| s.strip_prefix("CREATE TABLE ")?.split_whitespace().next()).collect();
            for statement in &statements {
                let Some(on) = statement.split_once(" ON ").filter(|_| statement.contains("INDEX ")) else { continue };
                if !statement.starts_with("CREATE ") {
                    continue;
                }
                let table = on.1.split_whitespace().next().unwrap();
                if created.contains(&table) {
                    continue;
                }
                assert!(concurrent_index(statement).is_some(), "{name}: not built concurrently: {statement}");
                let embedded = NON_TRANSACTIONAL.iter().find(|(n, _)| *n == name);
                assert_eq!(embedded.map(|(_, sql)| *sql), Some(up.as_str()), "{name} is not in NON_TRANSACTIONAL");
                assert!(!up.contains("$$"), "{name}: split at `;` needs plain statements");
            }
            if std::fs::read_to_string(path.join("metadata.toml"))
                .is_ok_and(|m| m.contains("run_in_transaction = false"))
            {
                outside.push(name);
            }
        }
        outside.sort_unstable();
        let listed: Vec<&str> = NON_TRANSACTIONAL.iter().map(|(n, _)| *n).collect();
        assert_eq!(outside, listed);
        let embedded: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
            .unwrap()
            .iter()
            .filter(|m| !m.metadata().run_in_transaction())
            .map(|m| m.name().to_string())
            .collect();
        assert_eq!(embedded, listed);
        assert_eq!(statements(NON_TRANSACTIONAL[1].1).len(), 3);
        assert_eq!(statements(NON_TRANSACTIONAL[2].1).len(), 8);
    }
}
