//! Claim throughput: W threads claim N ready tasks in batches until none are left.
//!
//! Prints, per backend and worker count, the median of several runs in claims per second.
//! `cargo bench -p cloacina --bench claims` (PostgreSQL from `CLOACINA_TEST_POSTGRES_URL`,
//! default the local server). Every run also checks each task was claimed exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::task_executions::{self as tasks, NewTask};
use cloacina::database::{Database, DatabaseConfig, UniversalTimestamp};
use serde_json::json;

const TASKS: usize = 10_000;
const BATCH: u32 = 16;
const RUNS: usize = 5;

fn fresh(backend: &str) -> (Database, Box<dyn FnOnce()>) {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let config = DatabaseConfig { pool_size: 16, ..Default::default() };
    match backend {
        "sqlite" => {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            let db = Database::connect_with(&format!("sqlite://{}", path.display()), config).expect("sqlite");
            (
                db,
                Box::new(move || {
                    for s in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
                    }
                }),
            )
        }
        _ => {
            let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            let db = Database::connect_with(&url, DatabaseConfig { schema: Some(name.clone()), ..config })
                .expect("postgres");
            let cleanup_db = db.clone();
            (
                db,
                Box::new(move || {
                    use diesel::connection::SimpleConnection;
                    if let Ok(mut c) = cleanup_db.get() {
                        let _ = c.batch_execute(&format!("DROP SCHEMA \"{name}\" CASCADE"));
                    }
                }),
            )
        }
    }
}

fn one_run(backend: &str, workers: usize) -> f64 {
    let (db, cleanup) = fresh(backend);
    let now = UniversalTimestamp::now();
    let new = NewPipeline {
        workflow_name: "bench".into(),
        workflow_version: "v1".into(),
        input: json!({}),
        tasks: (0..TASKS)
            .map(|i| NewTask {
                name: format!("t{i}"),
                max_attempts: 1,
                ready: true,
                trigger_rules: "{}".to_owned(),
                task_configuration: "{}".to_owned(),
            })
            .collect(),
    };
    pipelines::create(&mut db.get().expect("conn"), cloacina::models::PipelineExecutionId::new(), &new, now)
        .expect("create");
    let versions = vec![new.workflow_version.clone()];
    let start = Instant::now();
    let claimed: Vec<Vec<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (db, versions) = (&db, &versions);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut conn = db.get().expect("conn");
                    loop {
                        let got = tasks::claim_ready(
                            &mut conn,
                            &format!("w{w}"),
                            versions,
                            BATCH,
                            Duration::from_secs(60),
                            now,
                        )
                        .expect("claim");
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|t| t.id));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let elapsed = start.elapsed();
    let unique: HashSet<_> = claimed.iter().flatten().collect();
    assert_eq!(unique.len(), TASKS, "every task claimed exactly once");
    assert_eq!(claimed.iter().map(Vec::len).sum::<usize>(), TASKS);
    cleanup();
    TASKS as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("claim throughput: {TASKS} ready tasks, batches of {BATCH}, median of {RUNS} runs, {cores} cores");
    println!("{:<10} {:>8} {:>14} {:>14} {:>14}", "backend", "workers", "median/s", "min/s", "max/s");
    let backends: Vec<&str> = cloacina::Backend::ALL.iter().filter(|b| b.is_compiled()).map(|b| b.name()).collect();
    for backend in backends {
        for workers in [1, 8] {
            let runs: Vec<f64> = (0..RUNS).map(|_| one_run(backend, workers)).collect();
            let (min, max) = runs.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
            println!("{backend:<10} {workers:>8} {:>14.0} {min:>14.0} {max:>14.0}", median(runs));
        }
    }
}
