//! The defaults an upstream Cloacina user relies on without writing them down (issue 12): a task
//! runs once its dependencies have ended whatever they did (default trigger rule `always`), it
//! gets three attempts, and a failed pipeline's final context is the context of the task that
//! completed last; retry conditions choose which errors retry. Each on both backends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::engine::{config, engine_test, runner};
use cloacina::clock::ManualClock;
use cloacina::dal::task_executions as tasks;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::DefaultRunner;
use cloacina::task::TaskState;
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError, TaskStatus};

engine_test!(a_dependent_runs_after_a_failed_dependency_by_default, |t| {
    let wf = Workflow::builder("carry_on")
        .simple_task("fails", &[], |_ctx: Context<Value>| async move { Err(TaskError::fatal("broken")) })
        .simple_task("reports", &["fails"], |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("reported", json!(true));
            Ok(ctx)
        })
        .task(
            TaskSpec {
                trigger_rule: cloacina::task::TriggerRule::TaskSuccess { task: "fails".into() },
                ..TaskSpec::new("on_success_only", &["fails"])
            },
            |ctx: Context<Value>| async move { Ok(ctx) },
        )
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("carry_on", Context::new()).await.expect("execute");
    let status = |n: &str| result.task_results.iter().find(|r| r.task_name == n).map(|r| r.task_status);
    assert_eq!(status("fails"), Some(TaskStatus::Failed));
    assert_eq!(status("reports"), Some(TaskStatus::Completed), "the default rule is `always`");
    assert_eq!(result.status, WorkflowStatus::Failed, "a pipeline with a failed task still fails");
    assert_eq!(result.error_message.as_deref(), Some("task `fails` failed"));
    // Upstream's TaskState, as tutorial 04 matches on it.
    let state = |n: &str| result.task_results.iter().find(|r| r.task_name == n).map(|r| r.status.clone());
    match state("fails") {
        Some(TaskState::Failed { error, .. }) => assert_eq!(error, "broken"),
        other => panic!("expected Failed with its error, got {other:?}"),
    }
    match state("on_success_only") {
        Some(TaskState::Skipped { reason, .. }) => assert!(reason.contains("trigger rule"), "{reason}"),
        other => panic!("expected Skipped with a reason, got {other:?}"),
    }
    assert!(state("reports").is_some_and(|s| s.is_completed() && s == TaskStatus::Completed));
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_failed_pipelines_final_context_is_the_last_completed_tasks, |t| {
    let wf = Workflow::builder("half_done")
        .simple_task("first", &[], |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("first", json!(1));
            Ok(ctx)
        })
        .simple_task("second", &["first"], |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("second", json!(2));
            Ok(ctx)
        })
        .simple_task("third", &["second"], |_ctx: Context<Value>| async move { Err(TaskError::fatal("no")) })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let mut input = Context::new();
    input.insert("given", json!(0)).expect("input");
    let result = runner.execute("half_done", input).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert_eq!(result.final_context.to_value(), json!({"given": 0, "first": 1, "second": 2}));
    // The same is stored: a result read back from the database says so too.
    let stored = runner.attach(result.execution_id).await.expect("attach").wait_for_completion().await;
    assert_eq!(stored.expect("stored").final_context, result.final_context);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_task_gets_three_attempts_by_default, |t| {
    // The default policy waits about 1 s, then about 2 s (±25% jitter); a manual clock moved an
    // hour at a time runs each retry as soon as it is scheduled, without waiting for real time.
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2031, 1, 1, 0, 0, 0).single().expect("time"));
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let wf = Workflow::builder("stubborn")
        .task(TaskSpec::new("flaky", &[]), move |_ctx: Context<Value>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Err(TaskError::retryable("still down")) }
        })
        .build()
        .expect("wf");
    assert_eq!(wf.spec().task("flaky").expect("task").retry.max_attempts, 3);
    let runner = DefaultRunner::builder(t.url.clone())
        .config(config(&t))
        .clock(Arc::new(clock.clone()))
        .workflow(wf)
        .build()
        .await
        .expect("runner");
    let handle = runner.execute_async("stubborn", Context::new()).await.expect("start");
    let id = handle.execution_id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut moved_for = 1;
    loop {
        let waiting = tasks::list_for_pipeline(&mut t.conn(), id)
            .expect("rows")
            .into_iter()
            .find(|r| r.status == TaskStatus::Ready && r.retry_at.is_some())
            .map(|r| r.attempt);
        if waiting == Some(moved_for + 1) {
            // Attempt `moved_for` failed and its retry waits: move the clock past the wait.
            clock.advance(chrono::Duration::hours(1));
            moved_for += 1;
        }
        if handle.status().await.expect("status").is_terminal() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out; clock moved {} times", moved_for - 1);
        tokio::time::sleep(Duration::from_millis(10)).await; // the pace of polling observed state
    }
    let result = handle.wait_for_completion().await.expect("result");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert_eq!((result.task_results[0].attempts, calls.load(Ordering::SeqCst)), (3, 3));
    runner.shutdown().await.expect("shutdown");
});

engine_test!(retry_conditions_choose_which_errors_are_retried, |t| {
    use cloacina::retry::{RetryCondition, RetryPolicy};
    let quick = |condition: RetryCondition| RetryPolicy {
        retry_conditions: vec![condition],
        ..crate::engine::quick_retry(RetryPolicy::default().max_attempts)
    };
    let network_calls = Arc::new(AtomicU32::new(0));
    let counter = network_calls.clone();
    let wf = Workflow::builder("conditions")
        .task(
            TaskSpec { retry: quick(RetryCondition::TransientOnly), ..TaskSpec::new("invalid", &[]) },
            |_ctx: Context<Value>| async move { Err(TaskError::ValidationFailed { message: "bad row".into() }) },
        )
        .task(TaskSpec { retry: quick(RetryCondition::TransientOnly), ..TaskSpec::new("network", &[]) }, move |ctx| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n < 3 {
                    return Err(TaskError::retryable("network unreachable"));
                }
                Ok(ctx)
            }
        })
        .task(TaskSpec { retry: quick(RetryCondition::Never), ..TaskSpec::new("never", &[]) }, |_ctx| async move {
            Err(TaskError::retryable("network unreachable"))
        })
        .task(TaskSpec { retry: quick(RetryCondition::AllErrors), ..TaskSpec::new("fatal", &[]) }, |_ctx| async move {
            Err(TaskError::fatal("a bug"))
        })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("conditions", Context::new()).await.expect("execute");
    let task = |n: &str| result.task_results.iter().find(|r| r.task_name == n).cloned().expect("task");
    assert_eq!((task("invalid").task_status, task("invalid").attempts), (TaskStatus::Failed, 1), "not transient");
    assert_eq!((task("network").task_status, task("network").attempts), (TaskStatus::Completed, 3), "transient");
    assert_eq!((task("never").task_status, task("never").attempts), (TaskStatus::Failed, 1));
    assert_eq!((task("fatal").task_status, task("fatal").attempts), (TaskStatus::Failed, 1), "fatal is never retried");
    assert_eq!(task("invalid").error_message.as_deref(), Some("Task validation failed: bad row"));
    assert_eq!(result.status, WorkflowStatus::Failed);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(errors_built_in_task_code_name_their_task, |t| {
    // `?` on a context error builds TaskError::ContextError with no task id (task code does not
    // know its id); the engine fills it in before the error is stored or handed to a hook.
    let mut once = TaskSpec::new("needs_input", &[]);
    once.retry.max_attempts = 1;
    let wf = Workflow::builder("named_errors")
        .task(once, |ctx: Context<Value>| async move {
            let _rows: i64 = ctx.get_required("rows")?;
            Ok(ctx)
        })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("named_errors", Context::new()).await.expect("execute");
    let task = result.task_results.iter().find(|r| r.task_name == "needs_input").expect("task");
    let error = task.error_message.as_deref().unwrap_or_default();
    assert!(error.starts_with("Context error in task needs_input: "), "{error}");
    runner.shutdown().await.expect("shutdown");
});

/// Features of shared dependencies that upstream's `cloacina` enables and its users' programs
/// rely on through Cargo's feature unification (their own lines say only `tracing-subscriber =
/// "0.3"`, `tokio = "1"`, …): a drop-in must keep enabling them.
#[test]
fn the_features_upstream_programs_rely_on_stay_enabled() {
    let read = |path: &str| -> toml::Table {
        let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("read");
        text.parse().expect("parse")
    };
    let (ours, workspace) = (read("Cargo.toml"), read("../Cargo.toml"));
    let features = |name: &str| -> (bool, Vec<String>) {
        let dep = &ours["dependencies"][name];
        let mut all: Vec<String> = dep
            .get("features")
            .and_then(|f| f.as_array())
            .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut defaults = dep.get("default-features").and_then(|d| d.as_bool()).unwrap_or(true);
        if dep.get("workspace").and_then(|w| w.as_bool()) == Some(true) {
            let shared = &workspace["workspace"]["dependencies"][name];
            defaults &= shared.get("default-features").and_then(|d| d.as_bool()).unwrap_or(true);
            all.extend(
                shared
                    .get("features")
                    .and_then(|f| f.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned)),
            );
        }
        assert!(dep.get("optional").and_then(|o| o.as_bool()) != Some(true), "{name} must not be optional");
        (defaults, all)
    };
    for (name, needed, with_defaults) in [
        ("tracing-subscriber", &["env-filter"][..], true),
        ("tokio", &["full"][..], false),
        ("chrono", &["serde", "clock"][..], false),
        ("uuid", &["serde", "v4", "v5"][..], false),
        ("serde", &["derive"][..], false),
    ] {
        let (defaults, enabled) = features(name);
        for feature in needed {
            assert!(enabled.iter().any(|f| f == feature), "{name} must enable `{feature}`: {enabled:?}");
        }
        assert!(!with_defaults || defaults, "{name} must keep its default features (fmt, ansi)");
    }
}
