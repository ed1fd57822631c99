//! Test databases: a fresh SQLite file or a fresh PostgreSQL schema per test, removed afterwards.
//!
//! PostgreSQL comes from `CLOACINA_TEST_POSTGRES_URL` (default: the local server on 127.0.0.1:5432).
//! An unreachable server fails the test: the PostgreSQL leg is never skipped silently.

use std::path::PathBuf;

use cloacina::database::{AnyConnection, Database, DatabaseConfig};

/// Runs a test body once per compiled backend, as `<name>::sqlite` and `<name>::postgres`.
macro_rules! backend_test {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[cfg(feature = "sqlite")]
            #[test]
            fn sqlite() {
                let $db = $crate::harness::TestDb::sqlite();
                $body
            }

            #[cfg(feature = "postgres")]
            #[test]
            fn postgres() {
                let $db = $crate::harness::TestDb::postgres();
                $body
            }
        }
    };
}
pub(crate) use backend_test;

/// The PostgreSQL server tests use.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A directory under `target/` for test database files.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).expect("create target/test-dbs");
    dir.canonicalize().expect("canonical scratch dir")
}

/// A unique name for this test's database or schema.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

enum Cleanup {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    File(PathBuf),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Schema(String),
}

/// A migrated database private to one test.
pub struct TestDb {
    pub db: Database,
    /// The URL the test database was opened with.
    pub url: String,
    cleanup: Cleanup,
}

impl TestDb {
    /// A fresh SQLite file.
    #[cfg(feature = "sqlite")]
    pub fn sqlite() -> Self {
        Self::sqlite_with(DatabaseConfig::default())
    }

    /// A fresh SQLite file with a custom configuration.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_with(config: DatabaseConfig) -> Self {
        let path = scratch_dir().join(format!("{}.db", unique_name("t")));
        let url = format!("sqlite://{}", path.display());
        let db = Database::connect_with(&url, config).expect("open test SQLite database");
        Self { db, url, cleanup: Cleanup::File(path) }
    }

    /// A fresh PostgreSQL schema.
    #[cfg(feature = "postgres")]
    pub fn postgres() -> Self {
        Self::postgres_with(DatabaseConfig::default())
    }

    /// A fresh PostgreSQL schema with a custom configuration (its `schema` is replaced).
    #[cfg(feature = "postgres")]
    pub fn postgres_with(config: DatabaseConfig) -> Self {
        let schema = unique_name("t");
        let url = postgres_url();
        let db = Database::connect_with(&url, DatabaseConfig { schema: Some(schema.clone()), ..config })
            .unwrap_or_else(|e| panic!("PostgreSQL test database unavailable (set CLOACINA_TEST_POSTGRES_URL): {e}"));
        Self { db, url, cleanup: Cleanup::Schema(schema) }
    }

    /// A pooled connection.
    pub fn conn(&self) -> cloacina::database::PooledConnection {
        self.db.get().expect("pooled connection")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            #[cfg(feature = "postgres")]
            Cleanup::Schema(schema) => {
                use diesel::connection::SimpleConnection;
                let url = cloacina::database::DatabaseUrl::parse(&self.url).expect("url");
                if let Ok(mut conn) = cloacina::database::establish(&url, &Default::default()) {
                    let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
                }
            }
            #[cfg(not(feature = "postgres"))]
            Cleanup::Schema(_) => {}
        }
    }
}

/// Runs raw SQL (test setup only).
pub fn exec(conn: &mut AnyConnection, sql: &str) {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub(crate) use crate::processes::Worker;

/// Starts a `cloacina-test-worker` on the test's database (see [`Worker::start`]).
pub fn worker(db: &TestDb, env: &[(&str, String)]) -> Worker {
    Worker::start(&db.url, db.db.schema(), &scratch_dir(), env)
}

/// Polls `probe` every 20 ms until it returns `Some` (fails the test after `timeout`).
pub fn wait_until<T>(what: &str, timeout: std::time::Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Drops a PostgreSQL schema when it goes out of scope (for tests that create schemas themselves).
#[cfg(feature = "postgres")]
pub struct DropSchema(pub String);

#[cfg(feature = "postgres")]
impl Drop for DropSchema {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection;
        let url = cloacina::database::DatabaseUrl::parse(&postgres_url()).expect("url");
        if let Ok(mut conn) = cloacina::database::establish(&url, &Default::default()) {
            let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
        }
    }
}
