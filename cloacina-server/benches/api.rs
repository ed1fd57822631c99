//! The server on a large database: seeds RUNS runs of 10 tasks each (default 100,000 runs, so
//! 1,000,000 task rows), 90 % of them finished, on each backend; then prints p50/p95/max of the
//! runs page (`GET /api/v1/runs?limit=50`), a filtered page, a deep keyset page, a run's detail
//! and `/metrics`, each over REQUESTS requests; then prunes the finished runs the way
//! `cloacinactl runs prune` does while another connection writes a row every 5 ms, and prints how
//! long the prune took and the longest that writer waited (what a runner would wait).
//!
//! `cargo bench -p cloacina-server --bench api` (`BENCH_RUNS=10000` for a quick look,
//! `BENCH_BACKEND=sqlite|postgres` for one backend; PostgreSQL from `CLOACINA_TEST_POSTGRES_URL`).

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../../cloacina/benches/support/seed.rs"]
mod seed;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use cloacina::dal::contexts;
use cloacina::database::UniversalTimestamp;
use cloacina::ops::runs::PruneFilter;
use cloacina::{Database, DatabaseConfig};
use cloacina_server::{router, ServerConfig};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const REQUESTS: usize = 40;
/// Runs per prune batch, as `cloacinactl runs prune` and the retention service use.
const PRUNE_BATCH: u32 = 50;

fn open(backend: &str) -> (Database, String, Box<dyn FnOnce()>) {
    let name = format!("bench_api_{}", uuid::Uuid::new_v4().simple());
    let config = DatabaseConfig { pool_size: 8, ..Default::default() };
    if backend == "sqlite" {
        let path = std::env::temp_dir().join(format!("{name}.db"));
        let url = format!("sqlite://{}", path.display());
        let db = Database::connect_with(&url, config).unwrap();
        let cleanup = move || {
            for s in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{s}", path.display()));
            }
        };
        (db, url, Box::new(cleanup))
    } else {
        let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let db = Database::connect_with(&url, DatabaseConfig { schema: Some(name.clone()), ..config }).unwrap();
        let keep = db.clone();
        let cleanup = move || {
            use diesel::connection::SimpleConnection;
            if let Ok(mut c) = keep.get() {
                let _ = c.batch_execute(&format!("DROP SCHEMA \"{name}\" CASCADE"));
            }
        };
        (db, url, Box::new(cleanup))
    }
}

async fn timed(app: &Router, path: &str) -> Duration {
    let started = Instant::now();
    let response = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    let _ = response.into_body().collect().await.unwrap();
    started.elapsed()
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p = |q: f64| ms(samples[((samples.len() as f64 * q).ceil() as usize).saturating_sub(1).min(samples.len() - 1)]);
    format!("p50 {:>7.2} ms  p95 {:>7.2} ms  max {:>7.2} ms", p(0.5), p(0.95), ms(*samples.last().unwrap()))
}

async fn bench(backend: &str, runs: usize) {
    let (db, _url, cleanup) = open(backend);
    let seeding = Instant::now();
    let last = seed::seed(&db, runs);
    println!(
        "{backend}: seeded {runs} runs, {} task rows in {:.1} s",
        runs * seed::TASKS_PER_RUN,
        seeding.elapsed().as_secs_f64()
    );
    let app = router(db.clone(), ServerConfig::default());
    // A cursor deep into the list: the first page's last row, 90 pages down.
    let page = app.clone().oneshot(Request::get("/api/v1/runs?limit=500").body(Body::empty()).unwrap()).await.unwrap();
    let page: serde_json::Value =
        serde_json::from_slice(&page.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let cases = [
        ("runs page", "/api/v1/runs?limit=50".to_owned()),
        ("runs page, status=Running", "/api/v1/runs?limit=50&status=Running".to_owned()),
        ("runs page, workflow=wf3", "/api/v1/runs?limit=50&workflow=wf3".to_owned()),
        ("runs page after a cursor", format!("/api/v1/runs?limit=50&cursor={cursor}")),
        ("run detail", format!("/api/v1/runs/{last}")),
        ("metrics", "/metrics".to_owned()),
    ];
    for (what, path) in &cases {
        let _ = timed(&app, path).await; // warm
        let mut samples = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            samples.push(timed(&app, path).await);
        }
        println!("{backend}: {what:<28} {}  ({REQUESTS} requests)", summary(samples));
    }
    // Prune the finished 90 % while a writer measures how long a single write waits.
    let stop = Arc::new(AtomicBool::new(false));
    let (writer_db, writer_stop) = (db.clone(), stop.clone());
    let writer = std::thread::spawn(move || {
        let mut conn = writer_db.get().unwrap();
        let mut waits = Vec::new();
        while !writer_stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            contexts::insert(&mut conn, &json!({ "probe": waits.len() }), UniversalTimestamp::now()).unwrap();
            waits.push(started.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        waits
    });
    let started = Instant::now();
    let filter = PruneFilter { ended_before: chrono::Utc::now() + chrono::Duration::hours(1), statuses: Vec::new() };
    let mut conn = db.get().unwrap();
    let pause = || {
        std::thread::sleep(cloacina::ops::runs::PRUNE_PAUSE);
        true
    };
    let (deleted, batches) = cloacina::ops::runs::prune(&mut conn, &filter, PRUNE_BATCH, pause).unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut waits = writer.join().unwrap();
    waits.sort();
    let over = waits.iter().filter(|w| **w > Duration::from_millis(100)).count();
    let p99 = waits[(waits.len() * 99 / 100).min(waits.len() - 1)];
    println!(
        "{backend}: prune deleted {deleted} runs in {batches} batches in {:.1} s ({:.0} runs/s); \
         a concurrent writer ({} writes): p99 {:.1} ms, max {:.1} ms, {over} over 100 ms",
        took.as_secs_f64(),
        deleted as f64 / took.as_secs_f64(),
        waits.len(),
        p99.as_secs_f64() * 1e3,
        waits.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    drop(conn);
    cleanup();
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let only = std::env::var("BENCH_BACKEND").ok();
    for backend in ["sqlite", "postgres"].into_iter().filter(|b| only.as_deref().is_none_or(|o| o == *b)) {
        rt.block_on(bench(backend, runs));
    }
}
