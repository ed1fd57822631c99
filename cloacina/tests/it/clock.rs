//! The runner reads every time from its clock: with a [`ManualClock`] set years ahead of the real
//! time, retry waits and lease expiry happen when the test moves the clock, and only then (a
//! runner reading the system clock would wait years and time these tests out).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::engine::{config, engine_test};
use cloacina::clock::ManualClock;
use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::recovery_events;
use cloacina::dal::task_executions::{self as tasks, NewTask};
use cloacina::database::UniversalTimestamp;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::models::{PipelineExecutionId, TaskExecution};
use cloacina::retry::{Backoff, RetryPolicy};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError, TaskStatus};

/// Years after the real time, so real-time arithmetic anywhere in the engine would show.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 1, 1, 12, 0, 0).single().expect("time")
}

async fn runner_on(
    t: &crate::harness::TestDb,
    clock: &ManualClock,
    config: DefaultRunnerConfig,
    wf: Workflow,
) -> DefaultRunner {
    DefaultRunner::builder(t.url.clone())
        .config(config)
        .clock(Arc::new(clock.clone()))
        .workflow(wf)
        .build()
        .await
        .expect("runner")
}

/// Polls `probe` (a database read) until it gives a value: waiting on observed state.
async fn observe<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn rows(t: &crate::harness::TestDb, id: PipelineExecutionId) -> Vec<TaskExecution> {
    tasks::list_for_pipeline(&mut t.conn(), id).expect("rows")
}

engine_test!(a_retry_comes_due_on_the_runner_clock, |t| {
    let clock = ManualClock::new(start());
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let retry = RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::Fixed,
        initial_delay: Duration::from_secs(3_600),
        max_delay: Duration::from_secs(3_600),
        jitter: false,
        ..RetryPolicy::default()
    };
    let wf = Workflow::builder("later")
        .task(TaskSpec { retry, ..TaskSpec::new("flaky", &[]) }, move |ctx: Context<Value>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    Err(TaskError::retryable("not yet"))
                } else {
                    Ok(ctx)
                }
            }
        })
        .build()
        .expect("wf");
    let runner = runner_on(&t, &clock, config(&t), wf).await;
    let handle = runner.execute_async("later", Context::new()).await.expect("start");
    let id = handle.execution_id();
    let due = observe("the retry to be scheduled", || {
        rows(&t, id).into_iter().find(|r| r.status == TaskStatus::Ready && r.attempt == 2).and_then(|r| r.retry_at)
    })
    .await;
    assert_eq!(due, start() + chrono::Duration::hours(1), "the wait is measured on the runner's clock");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    clock.advance(chrono::Duration::hours(1));
    let result = tokio::time::timeout(Duration::from_secs(60), handle.wait_for_completion())
        .await
        .expect("the retry ran once the clock reached it")
        .expect("result");
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!((result.task_results[0].attempts, calls.load(Ordering::SeqCst)), (2, 2));
    runner.shutdown().await.expect("shutdown");
});

engine_test!(an_expired_lease_is_recovered_on_the_runner_clock, |t| {
    let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    let wf = Workflow::builder("orphan")
        .task(TaskSpec { retry, ..TaskSpec::new("only", &[]) }, |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("ran", json!(true));
            Ok(ctx)
        })
        .build()
        .expect("wf");
    // A runner that is gone claimed the task at `start()` with a 30 s lease.
    let lease = Duration::from_secs(30);
    let at = UniversalTimestamp::from(start());
    let id = PipelineExecutionId::new();
    let new = NewPipeline {
        workflow_name: wf.name().to_owned(),
        workflow_version: wf.version().to_owned(),
        input: json!({}),
        tasks: vec![NewTask::of(wf.spec().task("only").expect("task"), true)],
    };
    let mut conn = t.conn();
    pipelines::create(&mut conn, id, &new, at).expect("create");
    let versions = vec![wf.version().to_owned()];
    assert_eq!(tasks::claim_ready(&mut conn, "gone", &versions, 1, lease, at).expect("claim").len(), 1);

    // A runner whose clock shows ten seconds later (the lease still holds), then 31 s later.
    let clock = ManualClock::new(start() + chrono::Duration::seconds(10));
    let config =
        DefaultRunnerConfig { recovery_interval: Duration::from_millis(20), lease_duration: lease, ..config(&t) };
    let runner = runner_on(&t, &clock, config, wf).await;
    clock.advance(chrono::Duration::seconds(21));
    let done = observe("the recovered task to complete", || {
        pipelines::get(&mut t.conn(), id).ok()?.filter(|p| p.status.is_terminal())
    })
    .await;
    assert_eq!(done.status, cloacina::models::PipelineStatus::Completed);
    let events = recovery_events::list_for_pipeline(&mut conn, id).expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].recovery_type, recovery_events::TASK_REQUEUED);
    assert_eq!(events[0].recovered_at, start() + chrono::Duration::seconds(31), "recovered by the runner's clock");
    let row = rows(&t, id).remove(0);
    assert_eq!((row.attempt, row.claimed_by.as_deref()), (2, Some(runner.runner_name())));
    runner.shutdown().await.expect("shutdown");
});
