//! Engine throughput and latency with no-op tasks, against the targets of issue 11 (see
//! `docs/adr/0005-runtime-layout-and-throughput.md`).
//!
//! `cargo bench -p cloacina --bench engine` (PostgreSQL from `CLOACINA_TEST_POSTGRES_URL`).
//!
//! Parts (`CLOACINA_BENCH_ONLY=part,part,…` runs some; all by default):
//! - `wide`: one pipeline of 10,000 independent tasks, beside the database's single-row commit
//!   rate measured in the same run, and the ratio of the two; peak RSS;
//! - `huge`: the same with 100,000 tasks;
//! - `chain`: 300 tasks each depending on the previous: the time of one step;
//! - `many`: 500 and 2,000 concurrent 4-task pipelines;
//! - `latency`: `execute()` of a 1-task workflow;
//! - `large`: a chain of tasks each returning a 1.5 MB context: time from the last task's end to
//!   the pipeline's end;
//! - `pickup`: pipelines created by another process (this binary, re-run as a submitter whose
//!   only slot is busy): time from creation to the task running here;
//! - `scale`: wide 10,000 with 1, 2 and 3 runners on one database;
//! - `packaged`: wide 10,000 as a package (`benches/packages/wide`, compiled and loaded through
//!   the package ABI) against the compiled-in `wide`, run in turn on one runner: tasks per
//!   second of each and their ratio pair by pair.
//!
//! `CLOACINA_BENCH_BACKEND=postgres|sqlite` runs one backend; `CLOACINA_BENCH_RUNS` sets the runs
//! per measurement (default 5); `CLOACINA_BENCH_SQL=1` also prints how often each statement shape
//! ran. Statements and commits are counted on every connection the runners open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::Context;
use serde_json::Value;

#[path = "support/measure.rs"]
mod measure;
#[path = "support/target.rs"]
mod target;
use measure::{commit_rate, peak_rss_mb, quantile_ms, reset_peak_rss, Spread};

const WIDE: usize = 10_000;
const HUGE: usize = 100_000;
/// Concurrent small pipelines: two sizes, so a per-task cost that grows with the number of
/// active pipelines would show.
const MANY_PIPELINES: [usize; 2] = [500, 2_000];
const CHAIN: usize = 300;
const LARGE_STEPS: usize = 12;
const LARGE_BYTES: usize = 1_500_000;
const LATENCY_RUNS: usize = 200;
const PICKUPS: usize = 100;
fn concurrency() -> usize {
    std::env::var("CLOACINA_BENCH_CONCURRENCY").ok().and_then(|c| c.parse().ok()).unwrap_or(16)
}

/// Statements and commits the runners' connections issued (a counting instrumentation installed
/// as Diesel's default for every connection).
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static COMMITS: AtomicU64 = AtomicU64::new(0);
/// With `CLOACINA_BENCH_SQL=1`: how often each statement shape ran (its first 72 characters).
static SHAPES: std::sync::OnceLock<Mutex<std::collections::HashMap<String, u64>>> = std::sync::OnceLock::new();

struct Counter;

impl diesel::connection::Instrumentation for Counter {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as E;
        match event {
            E::StartQuery { query, .. } => {
                if let Some(shapes) = SHAPES.get() {
                    let shape: String = query.to_string().chars().take(72).collect();
                    *shapes.lock().unwrap_or_else(PoisonError::into_inner).entry(shape).or_default() += 1;
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

type Done = std::future::Ready<Result<Context<Value>, cloacina::TaskError>>;

fn noop(ctx: Context<Value>) -> Done {
    std::future::ready(Ok(ctx))
}

/// When the last `large` task ended.
static LARGE_DONE: Mutex<Option<Instant>> = Mutex::new(None);

fn large(mut ctx: Context<Value>) -> Done {
    ctx.insert_or_update("payload", Value::String("x".repeat(LARGE_BYTES)));
    *LARGE_DONE.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    std::future::ready(Ok(ctx))
}

fn micros_since_epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Pickup delays seen by `ping` tasks (creation in the submitter to start here).
static PICKED_UP: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

fn ping(ctx: Context<Value>) -> Done {
    if let Some(at) = ctx.get("submitted_us").and_then(Value::as_u64) {
        let delay = Duration::from_micros(micros_since_epoch().saturating_sub(at));
        PICKED_UP.lock().unwrap_or_else(PoisonError::into_inner).push(delay);
    }
    std::future::ready(Ok(ctx))
}

/// Set once the submitter's `hold` task occupies its only slot.
static HOLDING: AtomicBool = AtomicBool::new(false);

async fn hold(_ctx: Context<Value>) -> Result<Context<Value>, cloacina::TaskError> {
    HOLDING.store(true, Ordering::SeqCst);
    std::future::pending().await
}

fn wide(name: &str, tasks: usize) -> Workflow {
    (0..tasks).fold(Workflow::builder(name), |b, i| b.simple_task(&format!("t{i}"), &[], noop)).build().expect("wide")
}

fn chained(name: &str, steps: usize, code: fn(Context<Value>) -> Done) -> Workflow {
    let names: Vec<String> = (0..steps).map(|i| format!("t{i}")).collect();
    let mut b = Workflow::builder(name).simple_task(&names[0], &[], code);
    for w in names.windows(2) {
        b = b.simple_task(&w[1], &[w[0].as_str()], code);
    }
    b.build().expect("chain")
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

fn one(name: &str, code: fn(Context<Value>) -> Done) -> Workflow {
    Workflow::builder(name).simple_task("only", &[], code).build().expect("one")
}

fn runs() -> usize {
    std::env::var("CLOACINA_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5)
}

fn wants(part: &str) -> bool {
    match std::env::var("CLOACINA_BENCH_ONLY") {
        Ok(only) if !only.is_empty() => only.split(',').any(|p| p.trim() == part),
        _ => true,
    }
}

fn config(t: &target::Target) -> DefaultRunnerConfig {
    DefaultRunnerConfig {
        max_concurrent_tasks: concurrency(),
        schema: t.schema.clone(),
        pool_size: 8,
        ..Default::default()
    }
}

/// Runs `name` (a pipeline of `tasks` tasks) `runs()` times: tasks per second, statements and
/// commits per task, and the peak RSS of the runs.
async fn burn(runner: &DefaultRunner, name: &str, tasks: usize) -> (Spread, f64, f64, f64) {
    let mut rates = Vec::new();
    let before = counts();
    reset_peak_rss();
    for _ in 0..runs() {
        let start = Instant::now();
        let result = runner.execute(name, Context::new()).await.expect("execute");
        let failed: Vec<_> =
            result.task_results.iter().filter(|t| t.status != cloacina::TaskStatus::Completed).take(3).collect();
        assert_eq!(result.status, WorkflowStatus::Completed, "{:?} {failed:?}", result.error_message);
        rates.push(tasks as f64 / start.elapsed().as_secs_f64());
    }
    let after = counts();
    let per_task = |a: u64, b: u64| (a - b) as f64 / (tasks * runs()) as f64;
    (Spread::of(rates), per_task(after.0, before.0), per_task(after.1, before.1), peak_rss_mb())
}

async fn bench(backend: &str) {
    let t = target::target(backend);
    let mut builder = DefaultRunner::builder(t.url.clone())
        .config(config(&t))
        .workflow(wide("wide", WIDE))
        .workflow(diamond())
        .workflow(chained("chain", CHAIN, noop))
        .workflow(chained("large", LARGE_STEPS, large))
        .workflow(one("one", noop))
        .workflow(one("ping", ping));
    if wants("huge") {
        builder = builder.workflow(wide("huge", HUGE));
    }
    let runner = builder.build().await.expect("runner");

    if wants("wide") || wants("huge") {
        let baseline = commit_rate(&t.url, t.schema.as_deref());
        println!("{backend:<9} single-row commit rate (same run): {baseline:.0} commits/s");
        let target_ratio = if backend == "postgres" { 0.6 } else { 0.2 };
        for (name, tasks) in [("wide", WIDE), ("huge", HUGE)] {
            if !wants(name) {
                continue;
            }
            let (rate, statements, commits, rss) = burn(&runner, name, tasks).await;
            println!(
                "{backend:<9} wide {tasks:>7} tasks, 1 runner x {}: {} tasks/s = {:.2} x the commit rate \
                 (target {target_ratio} x); {statements:.2} statements and {commits:.2} commits per task; peak RSS \
                 {rss:.0} MB",
                concurrency(),
                rate.show(0),
                rate.median / baseline,
            );
        }
    }

    if wants("packaged") {
        packaged(backend, &runner).await;
    }

    if wants("chain") {
        let mut steps = Vec::new();
        for _ in 0..runs() {
            let start = Instant::now();
            let result = runner.execute("chain", Context::new()).await.expect("execute");
            assert_eq!(result.status, WorkflowStatus::Completed);
            steps.push(start.elapsed().as_secs_f64() * 1e3 / CHAIN as f64);
        }
        println!(
            "{backend:<9} chain of {CHAIN}: one step (task done -> dependent done) {} ms",
            Spread::of(steps).show(2)
        );
    }

    if wants("many") {
        for pipelines in MANY_PIPELINES {
            let mut rates = Vec::new();
            for _ in 0..runs() {
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
                "{backend:<9} {pipelines:>5} concurrent 4-task pipelines: {} tasks/s (creation included)",
                Spread::of(rates).show(0)
            );
        }
    }

    if wants("latency") {
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
            quantile_ms(&latencies, 0.5),
            quantile_ms(&latencies, 0.95)
        );
    }

    if wants("large") {
        let mut ends = Vec::new();
        for _ in 0..runs() {
            let result = runner.execute("large", Context::new()).await.expect("execute");
            let ended = Instant::now();
            assert_eq!(result.status, WorkflowStatus::Completed);
            let last = LARGE_DONE.lock().unwrap_or_else(PoisonError::into_inner).take().expect("large tasks ran");
            ends.push((ended - last).as_secs_f64() * 1e3);
        }
        println!(
            "{backend:<9} chain of {LARGE_STEPS} tasks returning {:.1} MB each: last task's end -> pipeline's end {} ms",
            LARGE_BYTES as f64 / 1e6,
            Spread::of(ends).show(1)
        );
    }

    if wants("pickup") {
        pickup(backend, &t).await;
    }

    if wants("scale") {
        let mut extra = Vec::new();
        for runners in 1..=3 {
            if runners > 1 {
                let more = DefaultRunner::builder(t.url.clone())
                    .config(config(&t))
                    .workflow(wide("wide", WIDE))
                    .build()
                    .await
                    .expect("runner");
                extra.push(more);
            }
            let (rate, statements, commits, _) = burn(&runner, "wide", WIDE).await;
            println!(
                "{backend:<9} wide {WIDE} tasks, {runners} runner(s) x {} in this process: {} tasks/s; \
                 {statements:.2} statements and {commits:.2} commits per task",
                concurrency(),
                rate.show(0)
            );
        }
        for r in extra {
            r.shutdown().await.expect("shutdown");
        }
    }

    runner.shutdown().await.expect("shutdown");
    drop(runner);
    (t.cleanup)();
}

/// Starts this binary as a submitter of `PICKUPS` `ping` pipelines and reports how soon this
/// process's runner started each.
async fn pickup(backend: &str, t: &target::Target) {
    PICKED_UP.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let exe = std::env::current_exe().expect("own path");
    let mut child = std::process::Command::new(exe)
        .env("CLOACINA_BENCH_ROLE", "submitter")
        .env("CLOACINA_BENCH_URL", &t.url)
        .env("CLOACINA_BENCH_SCHEMA", t.schema.clone().unwrap_or_default())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("submitter");
    let deadline = Instant::now() + Duration::from_secs(120);
    while PICKED_UP.lock().unwrap_or_else(PoisonError::into_inner).len() < PICKUPS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = child.wait().expect("submitter exit");
    assert!(status.success(), "the submitter failed: {status}");
    let mut seen = std::mem::take(&mut *PICKED_UP.lock().unwrap_or_else(PoisonError::into_inner));
    assert_eq!(seen.len(), PICKUPS, "pings picked up");
    seen.sort();
    println!(
        "{backend:<9} work created by another process, {PICKUPS} pipelines: picked up after p50 {:.2} ms, p95 {:.2} \
         ms, max {:.2} ms (poll interval {} ms)",
        quantile_ms(&seen, 0.5),
        quantile_ms(&seen, 0.95),
        quantile_ms(&seen, 1.0),
        DefaultRunnerConfig::default().poll_interval.as_millis()
    );
}

/// The submitter role: a runner whose only slot a never-ending task holds creates `PICKUPS`
/// `ping` pipelines 20 ms apart, which only the measuring process can run.
async fn submit() {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let url = var("CLOACINA_BENCH_URL").expect("CLOACINA_BENCH_URL");
    let config = DefaultRunnerConfig {
        max_concurrent_tasks: 1,
        schema: var("CLOACINA_BENCH_SCHEMA"),
        shutdown_timeout: Duration::from_millis(100),
        ..Default::default()
    };
    let hold = Workflow::builder("hold").simple_task("only", &[], hold).build().expect("hold");
    let runner = DefaultRunner::builder(url)
        .config(config)
        .workflow(hold)
        .workflow(one("ping", ping))
        .build()
        .await
        .expect("runner");
    runner.execute_async("hold", Context::new()).await.expect("hold");
    while !HOLDING.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..PICKUPS {
        let mut ctx = Context::new();
        ctx.insert("submitted_us", Value::from(micros_since_epoch())).expect("context");
        runner.execute_async("ping", ctx).await.expect("submit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = runner.shutdown().await;
}

/// The packaged wide workflow against the compiled-in one, in turn.
async fn packaged(backend: &str, runner: &DefaultRunner) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/packages/wide");
    let mut loader = cloacina::packages::Loader::from_env();
    if std::env::var_os("CLOACINA_PACKAGE_CACHE").is_none() {
        loader.compiler.cache_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/package-cache");
        loader.work_dir = loader.compiler.cache_dir.join("unpacked");
    }
    let (_, archive) = cloacina::packages::source::pack(&source).expect("pack the bench package");
    let started = Instant::now();
    let unpacked = loader.unpack(&archive).expect("unpack");
    let loaded = loader.load(&unpacked, cloacina::packages::Output::Captured).expect("load the bench package");
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    runner.add_workflows(loaded.set).await.expect("offer the package");
    let (mut compiled, mut packaged, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs() {
        let rate = |name: &'static str| async move {
            let start = Instant::now();
            let result = runner.execute(name, Context::new()).await.expect("execute");
            assert_eq!(result.status, WorkflowStatus::Completed, "{name}: {:?}", result.error_message);
            WIDE as f64 / start.elapsed().as_secs_f64()
        };
        let c = rate("wide").await;
        let p = rate("packaged_wide").await;
        compiled.push(c);
        packaged.push(p);
        ratios.push(p / c);
    }
    println!(
        "{backend:<9} packaged wide {WIDE} (loaded in {load_ms:.0} ms): {} tasks/s; compiled in: {} tasks/s; \
         packaged / compiled pair by pair: {} (target 0.80)",
        Spread::of(packaged).show(0),
        Spread::of(compiled).show(0),
        Spread::of(ratios).show(2),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if std::env::var("CLOACINA_BENCH_ROLE").as_deref() == Ok("submitter") {
        return submit().await;
    }
    diesel::connection::set_default_instrumentation(|| Some(Box::new(Counter))).expect("instrumentation");
    if std::env::var("CLOACINA_BENCH_SQL").is_ok() {
        let _ = SHAPES.set(Default::default());
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("engine benchmark: no-op tasks, release build, {cores} cores, {} runs per measurement", runs());
    let only = std::env::var("CLOACINA_BENCH_BACKEND").ok();
    for backend in cloacina::Backend::ALL.iter().filter(|b| b.is_compiled()) {
        if only.as_deref().is_some_and(|o| o != backend.name()) {
            continue;
        }
        bench(backend.name()).await;
    }
    if let Some(shapes) = SHAPES.get() {
        let shapes = shapes.lock().unwrap_or_else(PoisonError::into_inner);
        let mut top: Vec<_> = shapes.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        println!("statements by shape (CLOACINA_BENCH_SQL):");
        for (shape, n) in top.into_iter().take(20) {
            println!("{n:>9}  {shape}");
        }
    }
}
