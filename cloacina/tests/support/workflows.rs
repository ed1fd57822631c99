//! Workflows shared by the worker binary (`cloacina-test-worker`, `worker.rs` here) and the tests that drive it.
//! Both build them from this one file, so both register the same structure, hence the same
//! workflow version, and either can run the other's pipelines.

#![allow(dead_code)] // each includer uses its own part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloacina::retry::RetryPolicy;
use cloacina::task::TaskAttempt;
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::Context;
use serde_json::Value;

/// One line per execution of a task: `<pipeline> <task> <attempt> <event>`, `event` being
/// `start` (the code began) or `done` (it returned). Each line is a single `write(2)` on a file
/// opened for appending, so a killed process leaves only whole lines, never interleaved.
#[derive(Clone)]
pub(crate) struct ExecutionLog(Arc<Mutex<std::fs::File>>);

impl ExecutionLog {
    /// Opens (creating) the log at `path`.
    pub(crate) fn open(path: &Path) -> Self {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open execution log");
        Self(Arc::new(Mutex::new(file)))
    }

    /// Records `event` for the attempt the calling task code runs in.
    pub(crate) fn record(&self, event: &str) {
        let a = TaskAttempt::current().expect("called from task code");
        let line = format!("{} {} {} {event}\n", a.pipeline_execution_id, a.task_name, a.attempt);
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(line.as_bytes()).expect("write execution log");
    }
}

/// One parsed line of an [`ExecutionLog`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Execution {
    pub(crate) pipeline: String,
    pub(crate) task: String,
    pub(crate) attempt: u32,
    pub(crate) event: String,
}

/// Every line of the logs at `paths`.
pub(crate) fn read_logs(paths: &[PathBuf]) -> Vec<Execution> {
    paths
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(' ');
                    Some(Execution {
                        pipeline: f.next()?.to_owned(),
                        task: f.next()?.to_owned(),
                        attempt: f.next()?.parse().ok()?,
                        event: f.next()?.to_owned(),
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn spec(id: &str, deps: &[&str], max_attempts: u32) -> TaskSpec {
    TaskSpec { retry: RetryPolicy { max_attempts, ..RetryPolicy::default() }, ..TaskSpec::new(id, deps) }
}

/// `crashy_<max_attempts>`: one task, `victim`. With `hang` its code sleeps for ten minutes (the
/// process running it is about to be killed); without, it completes at once.
pub(crate) fn crashy(max_attempts: u32, hang: bool) -> Workflow {
    Workflow::builder(format!("crashy_{max_attempts}"))
        .task(spec("victim", &[], max_attempts), move |mut ctx: Context<Value>| async move {
            if hang {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            ctx.insert_or_update("survived", Value::Bool(true));
            Ok(ctx)
        })
        .build()
        .expect("crashy workflow")
}

/// `wide_<tasks>`: `tasks` independent no-op tasks, each logging its executions.
pub(crate) fn wide(tasks: usize, log: Option<ExecutionLog>) -> Workflow {
    (0..tasks)
        .fold(Workflow::builder(format!("wide_{tasks}")), |b, i| {
            let log = log.clone();
            b.task(spec(&format!("t{i:05}"), &[], 3), move |ctx: Context<Value>| {
                if let Some(log) = &log {
                    log.record("start");
                    log.record("done");
                }
                std::future::ready(Ok(ctx))
            })
        })
        .build()
        .expect("wide workflow")
}

/// `crash_loop`: `a → (b1, b2, b3) → c → d`, each task sleeping a random 0 to `task_ms` ms and
/// logging its start and end. Twenty attempts each: the crash loop kills runners at random, and
/// each kill of a task's runner costs the task one attempt.
pub(crate) fn crash_loop(task_ms: u64, log: Option<ExecutionLog>) -> Workflow {
    let tasks: [(&str, &[&str]); 6] =
        [("a", &[]), ("b1", &["a"]), ("b2", &["a"]), ("b3", &["a"]), ("c", &["b1", "b2", "b3"]), ("d", &["c"])];
    tasks
        .iter()
        .fold(Workflow::builder("crash_loop"), |b, (id, deps)| {
            let (log, name) = (log.clone(), (*id).to_owned());
            b.task(spec(id, deps, 20), move |mut ctx: Context<Value>| {
                let (log, name) = (log.clone(), name.clone());
                async move {
                    if let Some(log) = &log {
                        log.record("start");
                    }
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=task_ms))).await;
                    ctx.insert_or_update(format!("ran_{name}"), Value::Bool(true));
                    if let Some(log) = &log {
                        log.record("done");
                    }
                    Ok(ctx)
                }
            })
        })
        .build()
        .expect("crash_loop workflow")
}

/// `inbox`: one task that takes the file named by the context's `file` out of `dir` (a missing
/// file is already taken: the task is idempotent), after sleeping up to `task_ms` ms.
pub(crate) fn inbox(dir: PathBuf, task_ms: u64) -> Workflow {
    Workflow::builder("inbox")
        .task(spec("take", &[], 20), move |ctx: Context<Value>| {
            let dir = dir.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=task_ms))).await;
                let file = ctx.get("file").and_then(Value::as_str).unwrap_or_default().to_owned();
                match std::fs::remove_file(dir.join(&file)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(cloacina::TaskError::retryable(format!("cannot take {file}: {e}")))
                    }
                    _ => {}
                }
                Ok(ctx)
            }
        })
        .build()
        .expect("inbox workflow")
}

/// `inbox_watch`: fires `inbox` with the first file in `dir` (by name) every `every`, leaving the
/// file where it is (the workflow takes it), so a fire lost to a crash is made again. It takes
/// 40 ms after looking, so its fires often race the end of that file's run.
pub(crate) fn inbox_watch(dir: PathBuf, every: Duration) -> cloacina::trigger::Trigger {
    use cloacina::trigger::{Trigger, TriggerError, TriggerResult};
    Trigger::new("inbox_watch", "inbox", every, move || {
        let dir = dir.clone();
        async move {
            let entries = std::fs::read_dir(&dir).map_err(|e| TriggerError::PollError { message: e.to_string() })?;
            let first = entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).min();
            // A slow poll: what it saw may be stale by the time it fires (the run of that file
            // may have ended meanwhile), which the engine must not turn into a second run.
            tokio::time::sleep(Duration::from_millis(40)).await;
            Ok(match first {
                Some(file) => {
                    let mut ctx = Context::new();
                    ctx.insert("file", Value::String(file))?;
                    TriggerResult::Fire(Some(ctx))
                }
                None => TriggerResult::Skip,
            })
        }
    })
    .expect("inbox trigger")
}
