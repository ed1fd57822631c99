//! A runner process killed with SIGKILL mid-task: after its lease expires another runner re-runs
//! the task (attempt + 1) or fails it when its attempts are spent, writes a `recovery_events` row,
//! and the pipeline reaches a terminal state. The victim is a `cloacina-test-worker` process.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_until, worker};
use crate::workflows::crashy;
use cloacina::dal::{pipeline_executions as pipelines, recovery_events, task_executions as tasks};
use cloacina::models::{PipelineExecutionId, PipelineStatus, TaskStatus};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};

pub(crate) fn fast_recovery(schema: Option<String>, name: &str) -> DefaultRunnerConfig {
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

fn crash_and_recover(t: &crate::harness::TestDb, attempts: u32) -> (PipelineStatus, cloacina::models::TaskExecution) {
    let env = [
        ("NAME", "doomed-worker".to_owned()),
        ("HANG", "1".to_owned()),
        ("START", format!("crashy_{attempts}:1")),
        ("LEASE_MS", "1000".to_owned()),
        ("HEARTBEAT_MS", "200".to_owned()),
    ];
    let mut victim = worker(t, &env);
    let pipeline: PipelineExecutionId = victim.expect("PIPELINE").parse().expect("pipeline id");
    // Wait until the worker holds the task, then kill it without any chance to clean up.
    wait_until("the worker to claim the task", Duration::from_secs(30), || {
        let rows = tasks::list_for_pipeline(&mut t.conn(), pipeline).ok()?;
        (rows.first()?.claimed_by.as_deref() == Some("doomed-worker")).then_some(())
    });
    victim.kill();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let schema = t.db.schema().map(str::to_owned);
    let url = t.url.clone();
    let runner = rt.block_on(async move {
        DefaultRunner::builder(url.clone())
            .config(fast_recovery(schema, "rescuer"))
            .workflow(crashy(attempts, false))
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
