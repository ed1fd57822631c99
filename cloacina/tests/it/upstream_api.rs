//! Upstream Cloacina's executor names on our runner (issue 12), on both backends: the handle's
//! `get_status` and `wait_for_completion_with_timeout`, the executor's `get_execution_result`,
//! `pause_execution` / `resume_execution` / `cancel_execution` and `execute_with_callback`, and
//! the result fields upstream code reads (`start_time`, `end_time`, `attempt_count`, …), and
//! `DefaultRunnerBuilder::new().database_url(…)`, and `TaskHandle::defer_until`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::{engine_test, first_then_second, runner};
use cloacina::executor::{PipelineExecutor, StatusCallback, WorkflowStatus};
use cloacina::{Context, Error, TaskStatus};

struct Recorder(Arc<Mutex<Vec<WorkflowStatus>>>);

impl StatusCallback for Recorder {
    fn on_status_change(&self, status: WorkflowStatus) {
        self.0.lock().expect("lock").push(status);
    }
}

engine_test!(a_handle_waits_with_a_time_limit_and_reports_as_upstream, |t| {
    let (wf, gate) = first_then_second("gated");
    let runner = runner(&t, vec![wf]).await;
    let handle = runner.execute_async("gated", Context::new()).await.expect("start");
    let id = handle.execution_id();
    assert!(!handle.get_status().await.expect("status").is_terminal());

    let early = runner.attach(id).await.expect("attach");
    match early.wait_for_completion_with_timeout(Some(Duration::from_millis(50))).await {
        Err(Error::Timeout { id: timed_out, .. }) => assert_eq!(timed_out, id),
        other => panic!("expected a timeout while the gate is shut, got {other:?}"),
    }
    let running = runner.get_execution_result(id).await.expect("result so far");
    assert!(!running.status.is_terminal());
    assert_eq!((running.end_time, running.duration), (None, None));

    gate.add_permits(1);
    let result = handle.wait_for_completion_with_timeout(None).await.expect("result");
    assert_eq!(result.status, WorkflowStatus::Completed);
    let end = result.end_time.expect("ended");
    assert!(result.start_time <= end);
    assert_eq!(result.duration, Some((end - result.start_time).to_std().expect("ordered")));
    for task in &result.task_results {
        assert_eq!((task.attempt_count, task.task_status), (1, TaskStatus::Completed));
        assert!(task.start_time.is_some() && task.start_time <= task.end_time);
    }
    assert_eq!(runner.get_execution_result(id).await.expect("final"), result);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(pause_resume_and_cancel_by_upstreams_names, |t| {
    let (wf, gate) = first_then_second("controlled");
    let runner = runner(&t, vec![wf]).await;
    let paused = runner.execute_async("controlled", Context::new()).await.expect("start");
    runner.pause_execution(paused.execution_id(), Some("maintenance window")).await.expect("pause");
    assert_eq!(paused.get_status().await.expect("status"), WorkflowStatus::Paused);
    runner.resume_execution(paused.execution_id()).await.expect("resume");
    assert_ne!(paused.get_status().await.expect("status"), WorkflowStatus::Paused);

    let cancelled = runner.execute_async("controlled", Context::new()).await.expect("start");
    runner.cancel_execution(cancelled.execution_id()).await.expect("cancel");
    runner.cancel_execution(cancelled.execution_id()).await.expect("cancelling again is fine");
    assert_eq!(cancelled.get_status().await.expect("status"), WorkflowStatus::Cancelled);

    gate.add_permits(2);
    let result = paused.wait_for_completion().await.expect("result");
    assert_eq!(result.status, WorkflowStatus::Completed);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_callback_hears_each_status_up_to_the_end, |t| {
    let (wf, gate) = first_then_second("watched");
    let runner = runner(&t, vec![wf]).await;
    let heard = Arc::new(Mutex::new(Vec::new()));
    gate.add_permits(1);
    let result = runner
        .execute_with_callback("watched", Context::new(), Box::new(Recorder(heard.clone())))
        .await
        .expect("execute");
    assert_eq!(result.status, WorkflowStatus::Completed);
    let heard = heard.lock().expect("lock").clone();
    assert_eq!(heard.last(), Some(&WorkflowStatus::Completed), "{heard:?}");
    assert!(heard.windows(2).all(|w| w[0] != w[1]), "changes only: {heard:?}");
    runner.shutdown().await.expect("shutdown");
});

/// Upstream's import paths resolve: the prelude and `cloacina::cloacina_workflow`.
mod paths {
    use cloacina::prelude::*;

    fn failed(message: &str) -> cloacina::cloacina_workflow::TaskError {
        TaskError::ValidationFailed { message: message.to_owned() }
    }

    #[test]
    fn upstreams_import_paths_resolve() {
        let mut ctx: Context<serde_json::Value> = Context::new();
        ctx.insert_as("n", 1).expect("insert");
        assert_eq!(ctx.get_required::<i64>("n").expect("present"), 1);
        assert_eq!(failed("x").to_string(), "Task validation failed: x");
        assert_eq!(RetryPolicy::default().retry_conditions, [RetryCondition::AllErrors]);
        assert_eq!(TriggerRule::default(), TriggerRule::Always);
        assert!(DefaultRunnerConfig::default().max_concurrent_tasks > 0);
    }
}

engine_test!(hooks_run_once_the_outcome_is_recorded_and_never_change_it, |t| {
    use cloacina::workflow::{TaskSpec, Workflow};
    use cloacina::TaskError;
    use serde_json::{json, Value};

    let (heard, mut hears) = tokio::sync::mpsc::unbounded_channel::<(String, String, Option<TaskStatus>)>();
    let (on_ok, on_err) = (heard.clone(), heard);
    let url = t.url.clone();
    let schema = t.db.schema().map(str::to_owned);
    let quick = crate::engine::quick_retry(2);
    let wf = Workflow::builder("hooked")
        .simple_task("works", &[], |mut ctx: cloacina::Context<Value>| async move {
            ctx.insert_or_update("worked", json!(true));
            Ok(ctx)
        })
        .task(TaskSpec { retry: quick, ..TaskSpec::new("breaks", &[]) }, |_ctx| async move {
            Err(TaskError::retryable("still broken"))
        })
        .on_success("works", move |task_id, ctx| {
            let (on_ok, url, schema) = (on_ok.clone(), url.clone(), schema.clone());
            async move {
                // The outcome is durable before the hook runs: the row already says so.
                let parsed = cloacina::database::DatabaseUrl::parse(&url)?;
                let options = cloacina::database::ConnectOptions { schema, ..Default::default() };
                let mut conn = cloacina::database::establish(&parsed, &options)?;
                let pipelines = cloacina::dal::pipeline_executions::list(&mut conn, &Default::default())?;
                let p = pipelines.first().map(|p| p.id).ok_or("no pipeline")?;
                let stored = cloacina::dal::task_executions::list_for_pipeline(&mut conn, p)?
                    .into_iter()
                    .find(|r| r.task_name == task_id)
                    .map(|r| r.status);
                on_ok.send((task_id, ctx.get("worked").map(Value::to_string).unwrap_or_default(), stored))?;
                Ok(())
            }
        })
        .on_failure("breaks", move |task_id, error, _ctx| {
            let on_err = on_err.clone();
            async move {
                on_err.send((task_id, error.to_string(), None))?;
                Err("the alerting service is down too".into()) // must not change the outcome
            }
        })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("hooked", Context::new()).await.expect("execute");
    let task = |n: &str| result.task_results.iter().find(|r| r.task_name == n).cloned().expect("task");
    assert_eq!(task("works").status, TaskStatus::Completed);
    assert_eq!((task("breaks").task_status, task("breaks").attempts), (TaskStatus::Failed, 2));
    let mut calls = Vec::new();
    for _ in 0..2 {
        calls.push(
            tokio::time::timeout(Duration::from_secs(30), hears.recv()).await.expect("a hook ran").expect("open"),
        );
    }
    calls.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        calls,
        vec![
            ("breaks".to_owned(), "Task execution failed: still broken".to_owned(), None),
            ("works".to_owned(), "true".to_owned(), Some(TaskStatus::Completed)),
        ],
        "one success hook, one failure hook after the last attempt (not one per attempt)"
    );
    runner.shutdown().await.expect("shutdown");
    assert!(hears.try_recv().is_err(), "no further hook calls");
    let stored = runner.get_execution_result(result.execution_id).await.expect("stored");
    assert_eq!(stored.status, WorkflowStatus::Failed, "a failing hook changed nothing");
});

engine_test!(upstreams_runner_builder_takes_the_url_later, |t| {
    use cloacina::runner::DefaultRunnerBuilder;
    let (wf, gate) = first_then_second("built");
    gate.add_permits(1);
    let runner = DefaultRunnerBuilder::new()
        .database_url(&t.url)
        .with_config(crate::engine::config(&t))
        .workflow(wf)
        .build()
        .await
        .expect("runner");
    let result = runner.execute("built", Context::new()).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Completed);
    runner.shutdown().await.expect("shutdown");
    let err = DefaultRunnerBuilder::new().build().await.err().expect("no URL");
    assert!(matches!(err, Error::InvalidSetting { setting: "database_url", .. }), "{err}");
    assert_eq!(err.kind(), cloacina::ErrorKind::InvalidInput);
});

engine_test!(a_deferred_task_gives_its_slot_to_other_work_while_it_waits, |t| {
    use cloacina::task::TaskHandle;
    use cloacina::workflow::Workflow;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (deferring, released) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (d, r) = (deferring.clone(), released.clone());
    let waiter = Workflow::builder("waiter")
        .simple_task("wait_for_file", &[], move |ctx: Context<serde_json::Value>| {
            let (d, r) = (d.clone(), r.clone());
            async move {
                let mut handle = TaskHandle::current();
                assert!(handle.holds_slot(), "an attempt starts with its slot");
                let condition = || {
                    d.store(true, Ordering::SeqCst);
                    let done = r.load(Ordering::SeqCst);
                    async move { done }
                };
                handle.defer_until(condition, Duration::from_millis(5)).await?;
                assert!(handle.holds_slot(), "it has a slot again when it resumes");
                Ok(ctx)
            }
        })
        .build()
        .expect("waiter");
    let r = released.clone();
    let releaser = Workflow::builder("releaser")
        .simple_task("drop_file", &[], move |ctx: Context<serde_json::Value>| {
            r.store(true, Ordering::SeqCst);
            async move { Ok(ctx) }
        })
        .build()
        .expect("releaser");
    // One slot: the releaser can only run while the waiter has given its slot up.
    let config = cloacina::runner::DefaultRunnerConfig { max_concurrent_tasks: 1, ..crate::engine::config(&t) };
    let runner = cloacina::runner::DefaultRunner::builder(t.url.clone())
        .config(config)
        .workflow(waiter)
        .workflow(releaser)
        .build()
        .await
        .expect("runner");
    let waiting = runner.execute_async("waiter", Context::new()).await.expect("start waiter");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !deferring.load(Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "the waiter never deferred");
        tokio::time::sleep(Duration::from_millis(5)).await; // the pace of polling observed state
    }
    let releasing = runner.execute_async("releaser", Context::new()).await.expect("start releaser");
    let released_run = tokio::time::timeout(Duration::from_secs(30), releasing.wait_for_completion())
        .await
        .expect("the releaser ran in the freed slot")
        .expect("result");
    assert_eq!(released_run.status, WorkflowStatus::Completed);
    let waited = tokio::time::timeout(Duration::from_secs(30), waiting.wait_for_completion())
        .await
        .expect("the waiter resumed")
        .expect("result");
    assert_eq!(waited.status, WorkflowStatus::Completed);
    runner.shutdown().await.expect("shutdown");
});

#[tokio::test]
async fn outside_the_engine_a_handle_defers_without_a_slot() {
    let mut handle = cloacina::task::TaskHandle::current();
    assert!(!handle.holds_slot());
    let calls = std::sync::atomic::AtomicU32::new(0);
    let condition = || {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { n >= 2 }
    };
    handle.defer_until(condition, Duration::from_millis(1)).await.expect("waits");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}
