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

/// A `cloacina-test-worker` process (a runner in a process of its own), killed when dropped.
pub struct Worker {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    /// The worker's standard error, kept in a file for failure messages.
    stderr: PathBuf,
    /// What `READY` said: the worker's runner name.
    pub name: String,
}

impl Worker {
    /// Starts a worker on `db` with `env` (names without the `CLOACINA_WORKER_` prefix) and waits
    /// until its runner is up.
    pub fn start(db: &TestDb, env: &[(&str, String)]) -> Worker {
        use std::io::{BufRead, BufReader};
        let stderr = scratch_dir().join(format!("{}.stderr", unique_name("worker")));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cloacina-test-worker"));
        cmd.env("CLOACINA_WORKER_URL", &db.url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        if let Some(schema) = db.db.schema() {
            cmd.env("CLOACINA_WORKER_SCHEMA", schema);
        }
        for (k, v) in env {
            cmd.env(format!("CLOACINA_WORKER_{k}"), v);
        }
        let mut child = cmd.spawn().expect("spawn cloacina-test-worker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut worker = Worker { child, stdin, lines, stderr, name: String::new() };
        worker.name = worker.expect("READY");
        worker
    }

    /// The rest of the next line that starts with `prefix ` (within 60 s).
    pub fn expect(&mut self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let needle = format!("{prefix} ");
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(&needle) {
                        return rest.trim().to_owned();
                    }
                }
                Err(e) => panic!("worker did not print `{prefix}` ({e}); its stderr:\n{}", self.stderr_tail()),
            }
        }
    }

    /// Kills the worker with SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the worker to shut down gracefully and waits for it.
    pub fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the worker");
        assert!(status.success(), "worker exited with {status}; its stderr:\n{}", self.stderr_tail());
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.stderr);
    }
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
