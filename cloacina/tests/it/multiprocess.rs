//! Three runner processes on one database (PostgreSQL, or one SQLite file): each starts a pipeline
//! of 2,000 tasks and all of them run tasks of every pipeline. Every task must run exactly once,
//! counted by a side effect the test controls (one line per execution in a per-process file).

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use cloacina::dal::pipeline_executions as pipelines;
use cloacina::executor::WorkflowExecutor;
use cloacina::models::{PipelineExecutionId, PipelineStatus};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::Context;

const PROCESSES: usize = 3;
const TASKS: usize = 2_000;
const URL_ENV: &str = "CLOACINA_TEST_BURN_URL";

/// A wide workflow whose tasks append "<pipeline input id> <task>" to `log`.
fn burn(log: Option<std::path::PathBuf>) -> Workflow {
    let log = log.map(|p| {
        std::sync::Arc::new(std::sync::Mutex::new(
            std::fs::OpenOptions::new().create(true).append(true).open(p).expect("log"),
        ))
    });
    let names: Vec<String> = (0..TASKS).map(|i| format!("t{i:04}")).collect();
    names
        .iter()
        .fold(Workflow::builder("burn"), |b, name| {
            let (log, name) = (log.clone(), name.clone());
            b.simple_task(&name.clone(), &[], move |ctx: Context<Value>| {
                if let Some(log) = &log {
                    let run = ctx.get("run").and_then(Value::as_str).unwrap_or("?").to_owned();
                    let mut file = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    writeln!(file, "{run} {name}").expect("write side effect");
                }
                std::future::ready(Ok(ctx))
            })
        })
        .build()
        .expect("burn")
}

/// Worker mode: run a runner, start one pipeline, print its id, keep running tasks.
/// When this binary runs as an ordinary test (no worker variable), this function returns at once.
#[test]
fn burn_worker_entry_point() {
    let Ok(url) = std::env::var(URL_ENV) else { return };
    let log = std::env::var("CLOACINA_TEST_BURN_LOG").expect("log path");
    let run = std::env::var("CLOACINA_TEST_BURN_RUN").expect("run label");
    let schema = std::env::var("CLOACINA_TEST_BURN_SCHEMA").ok();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let config = DefaultRunnerConfig {
            schema,
            poll_interval: Duration::from_millis(50),
            pool_size: 6,
            ..Default::default()
        };
        let runner =
            DefaultRunner::builder(url).config(config).workflow(burn(Some(log.into()))).build().await.expect("runner");
        let mut input = Context::new();
        input.insert("run", Value::from(run)).expect("input");
        let handle = runner.execute_async("burn", input).await.expect("start");
        println!("PIPELINE {}", handle.execution_id());
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

crate::harness::backend_test!(three_runner_processes_run_every_task_exactly_once, |t| {
    let dir = crate::harness::scratch_dir();
    let mut workers = Vec::new();
    let mut ids: Vec<PipelineExecutionId> = Vec::new();
    let mut logs = Vec::new();
    for i in 0..PROCESSES {
        let log = dir.join(format!("{}.log", crate::harness::unique_name("burn")));
        let run = format!("run{i}");
        let (log_s, schema) = (log.display().to_string(), t.db.schema().unwrap_or_default().to_owned());
        let mut env = vec![
            (URL_ENV, t.url.as_str()),
            ("CLOACINA_TEST_BURN_LOG", log_s.as_str()),
            ("CLOACINA_TEST_BURN_RUN", run.as_str()),
        ];
        if !schema.is_empty() {
            env.push(("CLOACINA_TEST_BURN_SCHEMA", schema.as_str()));
        }
        let (child, id) = crate::harness::spawn_self("multiprocess::burn_worker_entry_point", &env, "PIPELINE");
        workers.push(child);
        ids.push(id.parse().expect("pipeline id"));
        logs.push(log);
    }
    for id in &ids {
        let status = crate::crash::wait_until("every pipeline to finish", Duration::from_secs(240), || {
            let p = pipelines::get(&mut t.conn(), *id).ok()??;
            p.status.is_terminal().then_some(p.status)
        });
        assert_eq!(status, PipelineStatus::Completed);
    }
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    let lines: Vec<String> = logs
        .iter()
        .flat_map(|l| std::fs::read_to_string(l).expect("log").lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let unique: HashSet<&String> = lines.iter().collect();
    assert_eq!(lines.len(), PROCESSES * TASKS, "executions (duplicates would exceed, losses fall short)");
    assert_eq!(unique.len(), PROCESSES * TASKS, "some task ran twice");
    let per_process: Vec<usize> =
        logs.iter().map(|l| std::fs::read_to_string(l).map(|s| s.lines().count()).unwrap_or(0)).collect();
    assert!(per_process.iter().filter(|&&n| n > 0).count() >= 2, "work was shared: {per_process:?}");
    for l in logs {
        let _ = std::fs::remove_file(l);
    }
});
