//! A runner killed with SIGKILL mid-task: after its lease expires another runner re-runs the task
//! (attempt + 1) or fails it when its attempts are spent, writes a `recovery_events` row, and the
//! pipeline reaches a terminal state. The child is this test binary re-executed in worker mode.

use std::time::{Duration, Instant};

use serde_json::Value;

use cloacina::dal::{pipeline_executions as pipelines, recovery_events, task_executions as tasks};
use cloacina::executor::WorkflowExecutor;
use cloacina::models::{PipelineExecutionId, PipelineStatus, TaskStatus};
use cloacina::retry::RetryPolicy;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::Context;

const WORKER_ENV: &str = "CLOACINA_TEST_WORKER_URL";

/// The workflow both processes register. In the worker the task hangs (it will be killed).
fn crashy(max_attempts: u32) -> Workflow {
    let hang = std::env::var(WORKER_ENV).is_ok();
    Workflow::builder(format!("crashy_{max_attempts}"))
        .task(
            TaskSpec { retry: RetryPolicy { max_attempts, ..RetryPolicy::default() }, ..TaskSpec::new("victim", &[]) },
            move |mut ctx: Context<Value>| async move {
                if hang {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                ctx.insert_or_update("survived", Value::Bool(true));
                Ok(ctx)
            },
        )
        .build()
        .expect("workflow")
}

fn fast_recovery(schema: Option<String>, name: &str) -> DefaultRunnerConfig {
    DefaultRunnerConfig {
        lease_duration: Duration::from_millis(1_000),
        heartbeat_interval: Duration::from_millis(200),
        recovery_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        pool_size: 3,
        schema,
        runner_name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// Worker mode: start a runner, start one pipeline, print its id, and hang in the task.
/// When this binary runs as an ordinary test (no worker variable), this function returns at once.
#[test]
fn worker_process_entry_point() {
    let Ok(url) = std::env::var(WORKER_ENV) else { return };
    let schema = std::env::var("CLOACINA_TEST_WORKER_SCHEMA").ok();
    let attempts: u32 = std::env::var("CLOACINA_TEST_WORKER_ATTEMPTS").ok().and_then(|a| a.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let runner = DefaultRunner::builder(url.clone())
            .config(fast_recovery(schema, "doomed-worker"))
            .workflow(crashy(attempts))
            .build()
            .await
            .expect("worker runner");
        let handle = runner.execute_async(&format!("crashy_{attempts}"), Context::new()).await.expect("start");
        println!("PIPELINE {}", handle.execution_id());
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

fn spawn_worker(t: &crate::harness::TestDb, attempts: u32) -> (std::process::Child, PipelineExecutionId) {
    let attempts = attempts.to_string();
    let mut env = vec![(WORKER_ENV, t.url.as_str()), ("CLOACINA_TEST_WORKER_ATTEMPTS", attempts.as_str())];
    if let Some(schema) = t.db.schema() {
        env.push(("CLOACINA_TEST_WORKER_SCHEMA", schema));
    }
    let (child, id) = crate::harness::spawn_self("crash::worker_process_entry_point", &env, "PIPELINE");
    (child, id.parse().expect("pipeline id"))
}

pub(crate) fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn crash_and_recover(t: &crate::harness::TestDb, attempts: u32) -> (PipelineStatus, cloacina::models::TaskExecution) {
    let (mut child, pipeline) = spawn_worker(t, attempts);
    // Wait until the worker holds the task, then kill it without any chance to clean up.
    wait_until("the worker to claim the task", Duration::from_secs(30), || {
        let rows = tasks::list_for_pipeline(&mut t.conn(), pipeline).ok()?;
        (rows.first()?.claimed_by.as_deref() == Some("doomed-worker")).then_some(())
    });
    child.kill().expect("SIGKILL the worker");
    child.wait().expect("reap the worker");

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let schema = t.db.schema().map(str::to_owned);
    let url = t.url.clone();
    let runner = rt.block_on(async move {
        DefaultRunner::builder(url.clone())
            .config(fast_recovery(schema, "rescuer"))
            .workflow(crashy(attempts))
            .build()
            .await
            .expect("rescuer")
    });
    let status = wait_until("the pipeline to finish", Duration::from_secs(30), || {
        let p = pipelines::get(&mut t.conn(), pipeline).ok()??;
        p.status.is_terminal().then_some(p.status)
    });
    rt.block_on(runner.shutdown()).expect("shutdown");
    let task = tasks::list_for_pipeline(&mut t.conn(), pipeline).expect("tasks").remove(0);
    let events = recovery_events::list_for_pipeline(&mut t.conn(), pipeline).expect("events");
    assert_eq!(events.len(), 1, "one recovery decision: {events:?}");
    assert_eq!(events[0].task_execution_id, Some(task.id));
    assert_eq!(events[0].details.as_ref().map(|d| d["previous_claimant"].clone()), Some(Value::from("doomed-worker")));
    (status, task)
}

crate::harness::backend_test!(a_killed_runners_task_is_rerun_by_another, |t| {
    let (status, task) = crash_and_recover(&t, 2);
    assert_eq!(status, PipelineStatus::Completed);
    assert_eq!((task.status, task.attempt), (TaskStatus::Completed, 2));
});

crate::harness::backend_test!(a_killed_runners_task_fails_when_attempts_are_spent, |t| {
    let (status, task) = crash_and_recover(&t, 1);
    assert_eq!(status, PipelineStatus::Failed);
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error_details.as_deref().is_some_and(|e| e.contains("lease expired")), "{:?}", task.error_details);
});
