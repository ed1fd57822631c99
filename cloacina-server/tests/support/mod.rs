//! What the server's tests share: a private database per test (a SQLite file or a PostgreSQL
//! schema), the workflows a real runner runs on it, and a runtime.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)] // each test file uses its own part

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, Database, DatabaseConfig, TaskError};
use serde_json::{json, Value};
use tokio::sync::watch;

/// A private database: a SQLite file or a PostgreSQL schema, dropped at the end.
pub struct TestDb {
    pub url: String,
    pub schema: Option<String>,
    file: Option<std::path::PathBuf>,
}

impl TestDb {
    pub fn sqlite() -> Self {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("server_{}.db", uuid::Uuid::new_v4().simple()));
        Self { url: format!("sqlite://{}", path.display()), schema: None, file: Some(path) }
    }

    pub fn postgres() -> Self {
        let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        Self { url, schema: Some(format!("server_{}", uuid::Uuid::new_v4().simple())), file: None }
    }

    pub fn open(&self) -> Database {
        Database::connect_with(&self.url, DatabaseConfig { schema: self.schema.clone(), ..Default::default() })
            .unwrap_or_else(|e| panic!("test database unavailable (set CLOACINA_TEST_POSTGRES_URL): {e}"))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some(schema) = &self.schema {
            use diesel::connection::SimpleConnection;
            let url = cloacina::database::DatabaseUrl::parse(&self.url).unwrap();
            if let Ok(mut conn) = cloacina::database::establish(&url, &Default::default()) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }
    }
}

pub fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f);
}

/// `ok_flow` (a → b), `bad_flow` (fails, is retried, fails for good), `slow_flow` (waits for `gate`).
pub fn workflows(gate: &watch::Receiver<bool>) -> Vec<Workflow> {
    let once = |id: &str, deps: &[&str]| {
        let mut spec = TaskSpec::new(id, deps);
        spec.retry.max_attempts = 1;
        spec
    };
    let ok = Workflow::builder("ok_flow")
        .task(once("a", &[]), |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("a", json!(1));
            Ok(ctx)
        })
        .task(once("b", &["a"]), |ctx: Context<Value>| async move { Ok(ctx) })
        .build()
        .unwrap();
    // Two attempts: the first fails with an error that is retried, the second for good.
    let mut twice = TaskSpec::new("breaks", &[]);
    twice.retry.max_attempts = 2;
    twice.retry.initial_delay = Duration::ZERO;
    let calls = Arc::new(AtomicU32::new(0));
    let bad =
        Workflow::builder("bad_flow")
            .task(twice, move |_ctx: Context<Value>| {
                let first = calls.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
                async move {
                    Err(if first { TaskError::retryable("disk almost full") } else { TaskError::fatal("disk full") })
                }
            })
            .build()
            .unwrap();
    let gate = gate.clone();
    let slow = Workflow::builder("slow_flow")
        .task(once("waits", &[]), move |ctx: Context<Value>| {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok(ctx)
            }
        })
        .build()
        .unwrap();
    vec![ok, bad, slow]
}

pub async fn runner(t: &TestDb, gate: &watch::Receiver<bool>) -> DefaultRunner {
    let config = DefaultRunnerConfig {
        schema: t.schema.clone(),
        poll_interval: Duration::from_millis(50),
        pool_size: 4,
        ..Default::default()
    };
    workflows(gate)
        .into_iter()
        .fold(DefaultRunner::builder(t.url.clone()).config(config), |b, w| b.workflow(w))
        .build()
        .await
        .unwrap()
}
