//! `db copy` throughput: seeds a SQLite file with RUNS runs of ten tasks (default 100,000 runs,
//! so 1,000,000 task rows, plus their pipelines, contexts), then copies it SQLite → PostgreSQL
//! and PostgreSQL → SQLite, each into a fresh migrated database, REPEAT times (default 3), and
//! prints rows/s per direction: median, min and max.
//!
//! `cargo bench -p cloacina --bench copy` (`BENCH_RUNS=10000` for a quick look; PostgreSQL from
//! `CLOACINA_TEST_POSTGRES_URL`).

#![allow(missing_docs, clippy::unwrap_used)]

#[allow(dead_code)] // the engine benchmark's helpers; this one uses `Spread`
#[path = "support/measure.rs"]
mod measure;
#[path = "support/seed.rs"]
mod seed;

use cloacina::ops::copy::{copy, CopyOptions};
use cloacina::{Database, DatabaseConfig};
use diesel::connection::SimpleConnection;
use measure::Spread;

fn postgres_url() -> String {
    std::env::var("CLOACINA_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A benchmark database and how to remove it.
type Fresh = (Database, Box<dyn FnOnce()>);

/// A fresh migrated database: a SQLite file or a PostgreSQL schema.
fn fresh(backend: &str) -> Fresh {
    let name = format!("bench_copy_{}", uuid::Uuid::new_v4().simple());
    if backend == "sqlite" {
        let path = std::env::temp_dir().join(format!("{name}.db"));
        let db = Database::connect_with(&format!("sqlite://{}", path.display()), DatabaseConfig::default()).unwrap();
        let cleanup = move || {
            for s in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{s}", path.display()));
            }
        };
        (db, Box::new(cleanup))
    } else {
        let config = DatabaseConfig { schema: Some(name.clone()), ..Default::default() };
        let db = Database::connect_with(&postgres_url(), config).unwrap();
        let keep = db.clone();
        let cleanup = move || {
            let _ = keep.get().unwrap().batch_execute(&format!("DROP SCHEMA \"{name}\" CASCADE"));
        };
        (db, Box::new(cleanup))
    }
}

/// Copies `from` into a fresh `to_backend` database; returns rows/s and the copy (to go on from).
fn timed_copy(from: &Database, to_backend: &str) -> (f64, u64, Fresh) {
    let (to, cleanup) = fresh(to_backend);
    let report =
        copy(&mut from.get().unwrap(), &mut to.get().unwrap(), CopyOptions::default(), chrono::Utc::now(), &mut |_| {})
            .unwrap();
    (report.rows as f64 / report.elapsed.as_secs_f64(), report.rows, (to, cleanup))
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let repeat: usize = std::env::var("BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let (source, drop_source) = fresh("sqlite");
    let started = std::time::Instant::now();
    seed::seed(&source, runs);
    println!(
        "seeded SQLite with {runs} runs, {} task rows in {:.1} s",
        runs * seed::TASKS_PER_RUN,
        started.elapsed().as_secs_f64()
    );
    let (mut to_pg, mut to_sqlite, mut rows) = (Vec::new(), Vec::new(), 0);
    for _ in 0..repeat {
        let (rate, n, (pg, drop_pg)) = timed_copy(&source, "postgres");
        to_pg.push(rate);
        rows = n;
        let (rate, _, (_, drop_back)) = timed_copy(&pg, "sqlite");
        to_sqlite.push(rate);
        drop_back();
        drop_pg();
    }
    for (direction, rates) in [("sqlite -> postgres", to_pg), ("postgres -> sqlite", to_sqlite)] {
        println!("{direction}: {rows} rows: rows/s {}", Spread::of(rates).show(0));
    }
    drop_source();
}
