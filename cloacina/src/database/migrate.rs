//! Embedded migrations: one directory per backend, the same names in the same order, picked by
//! the connection's variant at run time.
//!
//! Safe when several processes start at once: PostgreSQL serialises migrators with an advisory
//! lock (per schema), SQLite with `BEGIN IMMEDIATE` on the database file. A database that carries
//! a migration this binary does not know was migrated by a newer Cloacina and is refused.

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use super::{AnyConnection, Backend, Error, Result};

#[cfg(feature = "postgres")]
const POSTGRES: EmbeddedMigrations = diesel_migrations::embed_migrations!("src/database/migrations/postgres");
#[cfg(feature = "sqlite")]
const SQLITE: EmbeddedMigrations = diesel_migrations::embed_migrations!("src/database/migrations/sqlite");

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

/// Applies every pending migration and returns the versions it applied, oldest first.
///
/// `schema` (PostgreSQL only) is created first if it does not exist; the connection's
/// `search_path` must already point at it (see [`super::ConnectOptions::schema`]).
pub fn run_pending(conn: &mut AnyConnection, schema: Option<&str>) -> Result<Vec<String>> {
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(c) => {
            use diesel::connection::SimpleConnection;
            let key = advisory_lock_key(schema);
            c.batch_execute(&format!("SELECT pg_advisory_lock({key})"))?;
            let result = (|| {
                if let Some(schema) = schema {
                    super::connection::validate_schema_name(schema)?;
                    c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
                }
                apply(c, POSTGRES)
            })();
            let unlocked = c.batch_execute(&format!("SELECT pg_advisory_unlock({key})"));
            let applied = result?;
            unlocked?;
            Ok(applied)
        }
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => {
            if schema.is_some() {
                return Err(Error::SchemasUnsupported(Backend::Sqlite));
            }
            c.immediate_transaction(|c| apply(c, SQLITE))
        }
    }
}

/// Reports applied and pending migrations without changing anything (not even creating
/// Diesel's bookkeeping table in a database that was never migrated).
pub fn status(conn: &mut AnyConnection) -> Result<MigrationStatus> {
    let backend = conn.backend();
    if !has_bookkeeping_table(conn)? {
        return Ok(MigrationStatus { backend, applied: Vec::new(), pending: known_versions(backend)? });
    }
    let (applied, pending) = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(c) => inspect(c, &POSTGRES)?,
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(c) => inspect(c, &SQLITE)?,
    };
    Ok(MigrationStatus { backend, applied, pending })
}

/// The migration versions this binary ships for `backend`, oldest first.
pub fn known_versions(backend: Backend) -> Result<Vec<String>> {
    match backend {
        #[cfg(feature = "postgres")]
        Backend::Postgres => versions::<diesel::pg::Pg>(&POSTGRES),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => versions::<diesel::sqlite::Sqlite>(&SQLITE),
        #[allow(unreachable_patterns)]
        other => Err(Error::BackendNotCompiled { backend: other }),
    }
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Whether `__diesel_schema_migrations` exists where this connection looks for tables.
fn has_bookkeeping_table(conn: &mut AnyConnection) -> Result<bool> {
    use diesel::RunQueryDsl;
    // The catalogues differ: Postgres resolves through the search_path, SQLite has one namespace.
    let sql = match conn.backend() {
        Backend::Postgres => {
            "SELECT count(*) AS n FROM pg_catalog.pg_tables \
             WHERE schemaname = current_schema() AND tablename = '__diesel_schema_migrations'"
        }
        Backend::Sqlite => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'"
        }
    };
    let found: Count = diesel::sql_query(sql).get_result(conn)?;
    Ok(found.n > 0)
}

fn migration_error(e: impl std::fmt::Display) -> Error {
    Error::Migration(e.to_string())
}

fn versions<DB: DieselBackend>(set: &EmbeddedMigrations) -> Result<Vec<String>> {
    let migrations = MigrationSource::<DB>::migrations(set).map_err(migration_error)?;
    Ok(migrations.iter().map(|m| m.name().version().to_string()).collect())
}

/// Applied and pending versions; fails with [`Error::SchemaTooNew`] if the database is ahead of us.
fn inspect<DB: DieselBackend>(
    conn: &mut impl MigrationHarness<DB>,
    set: &EmbeddedMigrations,
) -> Result<(Vec<String>, Vec<String>)> {
    let known = versions::<DB>(set)?;
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

fn apply<DB: DieselBackend>(conn: &mut impl MigrationHarness<DB>, set: EmbeddedMigrations) -> Result<Vec<String>> {
    inspect(conn, &set)?;
    let done = conn.run_pending_migrations(set).map_err(migration_error)?;
    Ok(done.iter().map(ToString::to_string).collect())
}

/// A stable advisory-lock key for "migrating this schema" (FNV-1a of a fixed prefix and the schema).
#[cfg(feature = "postgres")]
fn advisory_lock_key(schema: Option<&str>) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "cloacina.migrate.".bytes().chain(schema.unwrap_or("").bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}
