//! `cloacina-test-worker`: one runner process for the crash, multi-process and soak tests, which
//! start it, kill it with SIGKILL and start it again. Not part of Cloacina's interface; built only
//! with the `failpoints` feature (the tests and benchmarks enable it).
//!
//! Configured by environment variables:
//! - `CLOACINA_WORKER_URL` (required), `CLOACINA_WORKER_SCHEMA`: the database;
//! - `CLOACINA_WORKER_LOG`: execution log file (see `workflows::ExecutionLog`);
//! - `CLOACINA_WORKER_START=<workflow>:<count>`: pipelines to start once the runner is up;
//! - `CLOACINA_WORKER_HANG=1`: `crashy_*` tasks hang (this process is about to be killed);
//! - `CLOACINA_WORKER_WIDE=<n>`: also register `wide_<n>`;
//! - `CLOACINA_WORKER_INBOX=<dir>`: also register `inbox` and its trigger `inbox_watch` (50 ms);
//! - `CLOACINA_WORKER_TASK_MS`: longest sleep of a `crash_loop` task (default 100);
//! - `CLOACINA_WORKER_<LEASE|HEARTBEAT|RECOVERY|POLL>_MS`, `…_CONCURRENCY`, `…_POOL`, `…_NAME`:
//!   runner settings;
//! - `CLOACINA_WORKER_EXIT_WHILE_CONNECTING=<n>`: no runner; `n` threads open connections in a
//!   loop, and once each has opened one the process exits with them still connecting (the exit
//!   must be clean: see `url_selection::exit_during_tls_handshakes_is_clean`).
//!
//! Prints `READY <runner name>`, then `PIPELINE <id>` per started pipeline, and runs until its
//! standard input closes (then it shuts down gracefully) or it is killed. Warnings and errors the
//! engine logs (a database step that failed and is retried, say) go to standard error, one line
//! each, so a test can look for them.

use std::io::BufRead;
use std::time::Duration;

use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::Context;

#[path = "workflows.rs"]
mod workflows;

fn var(name: &str) -> Option<String> {
    std::env::var(format!("CLOACINA_WORKER_{name}")).ok().filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(name: &str) -> Option<T> {
    var(name).map(|v| v.parse().unwrap_or_else(|_| panic!("CLOACINA_WORKER_{name}={v} is not a number")))
}

fn ms(name: &str) -> Option<Duration> {
    number::<u64>(name).map(Duration::from_millis)
}

/// Prints every WARN and ERROR event on standard error: level, target, then its fields.
struct Warnings;

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        eprintln!("{} {}{}", event.metadata().level(), event.metadata().target(), fields.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Starts `threads` threads that connect to `url` over and over, waits until each has connected
/// once, and returns (so `main` returns and the process exits while handshakes are in flight).
fn exit_while_connecting(url: &str, threads: usize) {
    let url = cloacina::database::DatabaseUrl::parse(url).expect("url");
    let (connected, first) = std::sync::mpsc::channel();
    for _ in 0..threads {
        let (url, connected) = (url.clone(), connected.clone());
        std::thread::spawn(move || loop {
            drop(cloacina::database::establish(&url, &Default::default()).expect("connect"));
            let _ = connected.send(());
        });
    }
    for _ in 0..threads {
        first.recv().expect("a thread connected");
    }
    println!("EXITING");
}

fn main() {
    let _ = tracing::subscriber::set_global_default(Warnings);
    let url = var("URL").expect("CLOACINA_WORKER_URL");
    if let Some(threads) = number::<usize>("EXIT_WHILE_CONNECTING") {
        exit_while_connecting(&url, threads);
        return;
    }
    let defaults = DefaultRunnerConfig::default();
    let config = DefaultRunnerConfig {
        schema: var("SCHEMA"),
        runner_name: var("NAME"),
        lease_duration: ms("LEASE_MS").unwrap_or(defaults.lease_duration),
        heartbeat_interval: ms("HEARTBEAT_MS").unwrap_or(defaults.heartbeat_interval),
        recovery_interval: ms("RECOVERY_MS").unwrap_or(defaults.recovery_interval),
        poll_interval: ms("POLL_MS").unwrap_or(Duration::from_millis(50)),
        max_concurrent_tasks: number("CONCURRENCY").unwrap_or(defaults.max_concurrent_tasks),
        pool_size: number("POOL").unwrap_or(6),
        enable_cron: false,
        ..defaults
    };
    let log = var("LOG").map(|p| workflows::ExecutionLog::open(p.as_ref()));
    let hang = var("HANG").is_some();
    let task_ms = number("TASK_MS").unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let mut builder = DefaultRunner::builder(url)
            .config(config)
            .workflow(workflows::crashy(1, hang))
            .workflow(workflows::crashy(2, hang))
            .workflow(workflows::crash_loop(task_ms, log.clone()));
        if let Some(n) = number::<usize>("WIDE") {
            builder = builder.workflow(workflows::wide(n, log.clone()));
        }
        if let Some(dir) = var("INBOX") {
            builder = builder
                .workflow(workflows::inbox(dir.clone().into(), task_ms))
                .trigger(workflows::inbox_watch(dir.into(), Duration::from_millis(50)));
        }
        let runner = builder.build().await.expect("start the runner");
        println!("READY {}", runner.runner_name());
        if let Some(start) = var("START") {
            let (workflow, count) = start.split_once(':').expect("CLOACINA_WORKER_START=<workflow>:<count>");
            for _ in 0..count.parse::<usize>().expect("count") {
                let handle = runner.execute_async(workflow, Context::new()).await.expect("start a pipeline");
                println!("PIPELINE {}", handle.execution_id());
            }
        }
        // Run until the driving test closes standard input.
        let _ = tokio::task::spawn_blocking(|| {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    break;
                }
            }
        })
        .await;
        runner.shutdown().await.expect("shutdown");
    });
}
