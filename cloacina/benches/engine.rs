//! Engine throughput and latency: no-op tasks burned down wide (independent) and chained
//! (each depends on the previous), and `execute()` latency of a one-task workflow.
//!
//! `cargo bench -p cloacina --bench engine` (PostgreSQL from `CLOACINA_TEST_POSTGRES_URL`).
//! `CLOACINA_BENCH_BACKEND=postgres|sqlite` runs one backend; `CLOACINA_BENCH_ONLY=latency`
//! runs only the latency part, `CLOACINA_BENCH_ONLY=wide` only the wide pipelines,
//! `CLOACINA_BENCH_ONLY=chain` only the chain;
//! `CLOACINA_BENCH_SQL=1` also prints how often each statement shape ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::Context;
use serde_json::Value;

#[path = "support/target.rs"]
mod target;
use target::target;

const WIDE: usize = 2_000;
const WIDE_BIG: usize = 10_000;
/// Concurrent small pipelines: two sizes, so a per-task cost that grows with the number of
/// active pipelines would show.
const MANY_PIPELINES: [usize; 2] = [500, 2_000];
const CHAIN: usize = 300;
const LATENCY_RUNS: usize = 200;
const RUNS: usize = 3;
const CONCURRENCY: usize = 16;

/// Statements and commits the runner's connections issued (all of them: a counting instrumentation
/// installed as Diesel's default for every connection the runner opens).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static COMMITS: AtomicU64 = AtomicU64::new(0);
/// With `CLOACINA_BENCH_SQL=1`: how often each statement shape ran (its first 72 characters).
static SHAPES: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, u64>>> =
    std::sync::OnceLock::new();

struct Counter;

impl diesel::connection::Instrumentation for Counter {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as E;
        match event {
            E::StartQuery { query, .. } => {
                if let Some(shapes) = SHAPES.get() {
                    let shape: String = query.to_string().chars().take(72).collect();
                    *shapes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(shape).or_default() += 1;
                }
                STATEMENTS.fetch_add(1, Ordering::Relaxed)
            }
            E::CommitTransaction { .. } => COMMITS.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

fn counts() -> (u64, u64) {
    (STATEMENTS.load(Ordering::Relaxed), COMMITS.load(Ordering::Relaxed))
}

fn noop(ctx: Context<Value>) -> std::future::Ready<Result<Context<Value>, cloacina::TaskError>> {
    std::future::ready(Ok(ctx))
}

fn wide(name: &str, tasks: usize) -> Workflow {
    let names: Vec<String> = (0..tasks).map(|i| format!("t{i}")).collect();
    names.iter().fold(Workflow::builder(name), |b, n| b.simple_task(n, &[], noop)).build().expect("wide")
}

/// A small diamond, for many concurrent pipelines.
fn diamond() -> Workflow {
    Workflow::builder("diamond")
        .simple_task("a", &[], noop)
        .simple_task("b", &["a"], noop)
        .simple_task("c", &["a"], noop)
        .simple_task("d", &["b", "c"], noop)
        .build()
        .expect("diamond")
}

fn chain() -> Workflow {
    let names: Vec<String> = (0..CHAIN).map(|i| format!("t{i}")).collect();
    let mut b = Workflow::builder("chain").simple_task(&names[0], &[], noop);
    for w in names.windows(2) {
        b = b.simple_task(&w[1], &[w[0].as_str()], noop);
    }
    b.build().expect("chain")
}

fn one() -> Workflow {
    Workflow::builder("one").simple_task("only", &[], noop).build().expect("one")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn bench(backend: &str) {
    let t = target(backend);
    let config = DefaultRunnerConfig {
        max_concurrent_tasks: CONCURRENCY,
        schema: t.schema.clone(),
        pool_size: 8,
        ..Default::default()
    };
    let runner = DefaultRunner::builder(t.url.clone())
        .config(config)
        .workflow(wide("wide", WIDE))
        .workflow(wide("wide_big", WIDE_BIG))
        .workflow(diamond())
        .workflow(chain())
        .workflow(one())
        .build()
        .await
        .expect("runner");
    let only = std::env::var("CLOACINA_BENCH_ONLY").unwrap_or_default();
    let only_latency = only == "latency";
    let only_wide = only == "wide";
    let only_chain = only == "chain";
    let throughput: &[(&str, usize)] = if only_latency {
        &[]
    } else if only_wide {
        &[("wide", WIDE), ("wide_big", WIDE_BIG)]
    } else {
        &[("wide", WIDE), ("wide_big", WIDE_BIG), ("chain", CHAIN)]
    };
    for &(name, tasks) in throughput {
        let mut rates = Vec::new();
        let before = counts();
        for _ in 0..RUNS {
            let start = Instant::now();
            let result = runner.execute(name, Context::new()).await.expect("execute");
            assert_eq!(result.status, WorkflowStatus::Completed);
            rates.push(tasks as f64 / start.elapsed().as_secs_f64());
        }
        let after = counts();
        let per_task = |a: u64, b: u64| (a - b) as f64 / (tasks * RUNS) as f64;
        println!(
            "{backend:<9} {name:<6} {tasks:>6} tasks  concurrency {CONCURRENCY:>3}  {:>8.0} tasks/s (median of {RUNS}), \
             {:.2} statements and {:.2} commits per task",
            median(rates),
            per_task(after.0, before.0),
            per_task(after.1, before.1),
        );
    }
    for pipelines in if only_latency || only_wide || only_chain { &[][..] } else { &MANY_PIPELINES[..] } {
        let pipelines = *pipelines;
        let mut rates = Vec::new();
        for _ in 0..RUNS {
            let start = Instant::now();
            let mut handles = Vec::with_capacity(pipelines);
            for _ in 0..pipelines {
                handles.push(runner.execute_async("diamond", Context::new()).await.expect("start"));
            }
            for h in handles {
                assert_eq!(h.wait_for_completion().await.expect("wait").status, WorkflowStatus::Completed);
            }
            rates.push((pipelines * 4) as f64 / start.elapsed().as_secs_f64());
        }
        println!(
            "{backend:<9} {pipelines:>5} concurrent 4-task pipelines  {:>8.0} tasks/s (median of {RUNS}, creation included)",
            median(rates)
        );
    }
    if !only_wide && !only_chain {
        let mut latencies = Vec::with_capacity(LATENCY_RUNS);
        for _ in 0..LATENCY_RUNS {
            let start = Instant::now();
            let result = runner.execute("one", Context::new()).await.expect("execute");
            assert_eq!(result.status, WorkflowStatus::Completed);
            latencies.push(start.elapsed());
        }
        latencies.sort();
        println!(
            "{backend:<9} execute() of a 1-task workflow, {LATENCY_RUNS} runs: p50 {:.2} ms, p95 {:.2} ms",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.95).as_secs_f64() * 1e3
        );
    }
    runner.shutdown().await.expect("shutdown");
    drop(runner);
    (t.cleanup)();
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    diesel::connection::set_default_instrumentation(|| Some(Box::new(Counter))).expect("instrumentation");
    if std::env::var("CLOACINA_BENCH_SQL").is_ok() {
        let _ = SHAPES.set(Default::default());
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("engine benchmark: no-op tasks, release build, {cores} cores");
    let only = std::env::var("CLOACINA_BENCH_BACKEND").ok();
    for backend in cloacina::Backend::ALL.iter().filter(|b| b.is_compiled()) {
        if only.as_deref().is_some_and(|o| o != backend.name()) {
            continue;
        }
        bench(backend.name()).await;
    }
    if let Some(shapes) = SHAPES.get() {
        let shapes = shapes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut top: Vec<_> = shapes.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        println!("statements by shape (CLOACINA_BENCH_SQL):");
        for (shape, n) in top.into_iter().take(20) {
            println!("{n:>9}  {shape}");
        }
    }
}
