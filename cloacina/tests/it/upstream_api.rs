//! Upstream Cloacina's executor names on our runner (issue 12), on both backends: the handle's
//! `get_status` and `wait_for_completion_with_timeout`, the executor's `get_execution_result`,
//! `pause_execution` / `resume_execution` / `cancel_execution` and `execute_with_callback`, and
//! the result fields upstream code reads (`start_time`, `end_time`, `attempt_count`, …).

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
        assert_eq!((task.attempt_count, task.status), (1, TaskStatus::Completed));
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
        ctx.insert_as("n", &1).expect("insert");
        assert_eq!(ctx.get_required("n").expect("present"), &serde_json::json!(1));
        assert_eq!(failed("x").to_string(), "Task validation failed: x");
        assert_eq!(RetryPolicy::default().retry_conditions, [RetryCondition::AllErrors]);
        assert_eq!(TriggerRule::default(), TriggerRule::Always);
        assert!(DefaultRunnerConfig::default().max_concurrent_tasks > 0);
    }
}
