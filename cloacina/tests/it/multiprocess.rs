//! Four runner processes on one database (PostgreSQL, or one SQLite file): each starts a pipeline
//! of 2,000 tasks and all of them run tasks of every pipeline. Every task must run exactly once,
//! counted by a side effect the test controls (one line per execution in a per-process log), and
//! no process logs a "database is locked" error, not even one the engine retried: the supported
//! envelope of SQLite (several processes, one host).

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::{scratch_dir, unique_name, wait_until, worker};
use crate::workflows::read_logs;
use cloacina::dal::pipeline_executions as pipelines;
use cloacina::models::{PipelineExecutionId, PipelineStatus};

const PROCESSES: usize = 4;
const TASKS: usize = 2_000;

crate::harness::backend_test!(four_runner_processes_run_every_task_exactly_once_without_lock_errors, |t| {
    let logs: Vec<_> = (0..PROCESSES).map(|_| scratch_dir().join(format!("{}.log", unique_name("burn")))).collect();
    let mut workers = Vec::new();
    let mut ids: Vec<PipelineExecutionId> = Vec::new();
    for log in &logs {
        let env =
            [("LOG", log.display().to_string()), ("WIDE", TASKS.to_string()), ("START", format!("wide_{TASKS}:1"))];
        let mut worker = worker(&t, &env);
        ids.push(worker.expect("PIPELINE").parse().expect("pipeline id"));
        workers.push(worker);
    }
    for id in &ids {
        let status = wait_until("every pipeline to finish", Duration::from_secs(240), || {
            let p = pipelines::get(&mut t.conn(), *id).ok()??;
            p.status.is_terminal().then_some(p.status)
        });
        assert_eq!(status, PipelineStatus::Completed);
    }
    let mut logged = String::new();
    for w in workers {
        logged.push_str(&w.stderr_text());
        w.stop();
    }
    let locked: Vec<&str> = logged.lines().filter(|l| l.contains("database is locked")).collect();
    assert!(locked.is_empty(), "{} \"database is locked\" errors:\n{}", locked.len(), locked.join("\n"));
    let starts: Vec<_> = read_logs(&logs).into_iter().filter(|e| e.event == "start").collect();
    let unique: HashSet<(&str, &str)> = starts.iter().map(|e| (e.pipeline.as_str(), e.task.as_str())).collect();
    assert_eq!(unique.len(), PROCESSES * TASKS, "every task ran");
    assert_eq!(starts.len(), PROCESSES * TASKS, "no task ran twice");
    let per_process: Vec<usize> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).map(|s| s.lines().filter(|l| l.ends_with("start")).count()).unwrap_or(0))
        .collect();
    assert!(per_process.iter().filter(|&&n| n > 0).count() >= 2, "work was shared: {per_process:?}");
    for l in logs {
        let _ = std::fs::remove_file(l);
    }
});
