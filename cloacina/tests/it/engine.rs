//! The engine end to end on both backends: DAG execution, context merge order, retries,
//! failures and skips, trigger rules, timeouts, cancellation, and retries surviving a restart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::retry::{Backoff, RetryPolicy};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::task::{TriggerRule, ValueOperator};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError, TaskStatus};

/// Runs an async engine test once per backend, on a fresh database.
macro_rules! engine_test {
    ($name:ident, |$t:ident| $body:block) => {
        crate::harness::backend_test!($name, |$t| {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move { $body });
        });
    };
}
pub(crate) use engine_test;

/// `attempts` in all, 10 ms apart, without jitter: retries that do not slow a test down.
pub(crate) fn quick_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        backoff: Backoff::Fixed,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        jitter: false,
        ..RetryPolicy::default()
    }
}

pub(crate) fn config(t: &crate::harness::TestDb) -> DefaultRunnerConfig {
    DefaultRunnerConfig {
        schema: t.db.schema().map(str::to_owned),
        poll_interval: Duration::from_millis(50),
        pool_size: 4,
        ..Default::default()
    }
}

pub(crate) async fn runner(t: &crate::harness::TestDb, workflows: Vec<Workflow>) -> DefaultRunner {
    workflows
        .into_iter()
        .fold(DefaultRunner::builder(t.url.clone()).config(config(t)), |b, w| b.workflow(w))
        .build()
        .await
        .expect("runner")
}

/// A task that records its name and the keys it saw.
fn mark(
    name: &'static str,
) -> impl Fn(Context<Value>) -> std::future::Ready<Result<Context<Value>, TaskError>> + Send + Sync {
    move |mut ctx: Context<Value>| {
        let seen: Vec<String> = ctx.keys().map(str::to_owned).collect();
        ctx.insert_or_update("last", json!(name));
        ctx.insert_or_update(format!("seen_by_{name}"), json!(seen));
        std::future::ready(Ok(ctx))
    }
}

/// `first`, which runs until the test opens the returned gate, then `second`: room to cancel or
/// pause in between.
pub(crate) fn first_then_second(name: &str) -> (Workflow, Arc<tokio::sync::Semaphore>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let wf = Workflow::builder(name)
        .simple_task("first", &[], move |ctx: Context<Value>| {
            let g = g.clone();
            async move {
                let _open = g.acquire().await.map_err(|e| TaskError::fatal(e.to_string()))?;
                Ok(ctx)
            }
        })
        .simple_task("second", &["first"], mark("second"))
        .build()
        .expect("wf");
    (wf, gate)
}

fn status_of(rows: &[cloacina::models::TaskExecution], name: &str) -> Option<TaskStatus> {
    rows.iter().find(|r| r.task_name == name).map(|r| r.status)
}

async fn rows_of(
    runner: &DefaultRunner,
    id: cloacina::models::PipelineExecutionId,
) -> Vec<cloacina::models::TaskExecution> {
    runner.database().run(move |c| cloacina::dal::task_executions::list_for_pipeline(c, id)).await.expect("rows")
}

fn diamond() -> Workflow {
    Workflow::builder("diamond")
        .simple_task("extract", &[], mark("extract"))
        .simple_task("left", &["extract"], mark("left"))
        .simple_task("right", &["extract"], mark("right"))
        .simple_task("join", &["left", "right"], mark("join"))
        .build()
        .expect("diamond")
}

engine_test!(a_diamond_completes_with_a_deterministic_context, |t| {
    let runner = runner(&t, vec![diamond()]).await;
    let mut input = Context::new();
    input.insert("input", json!(1)).expect("insert");
    let first = runner.execute("diamond", input.clone()).await.expect("execute");
    assert_eq!(first.status, WorkflowStatus::Completed);
    assert_eq!(first.task_results.len(), 4);
    assert!(first.task_results.iter().all(|r| r.status == TaskStatus::Completed && r.attempts == 1));
    // join's dependencies are [left, right]: right's output merges last, so `last` is "right"
    // in join's input; join then overwrites it.
    assert_eq!(first.final_context.get("last"), Some(&json!("join")));
    assert_eq!(first.final_context.get("input"), Some(&json!(1)));
    let seen_by_join = first.final_context.get("seen_by_join").cloned();
    for _ in 0..3 {
        let again = runner.execute("diamond", input.clone()).await.expect("execute");
        assert_eq!(again.final_context, first.final_context, "the same run gives the same final context");
    }
    assert!(seen_by_join.is_some_and(|v| v.as_array().is_some_and(|a| a.contains(&json!("seen_by_left")))));
    // The result handed over in process equals the one read back from the database.
    let stored = runner.attach(first.execution_id).await.expect("attach").wait_for_completion().await;
    assert_eq!(stored.expect("stored"), first);
    let unknown = runner.attach(cloacina::models::PipelineExecutionId::new()).await;
    assert!(matches!(unknown, Err(cloacina::Error::ExecutionNotFound(_))));
    runner.shutdown().await.expect("shutdown");
});

engine_test!(later_dependencies_win_the_merge, |t| {
    let set = |v: &'static str| {
        move |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("k", json!(v));
            Ok(ctx)
        }
    };
    let wf = Workflow::builder("merge")
        .simple_task("a", &[], set("a"))
        .simple_task("b", &[], set("b"))
        .simple_task("ab", &["a", "b"], |ctx: Context<Value>| async move { Ok(ctx) })
        .simple_task("ba", &["b", "a"], |mut ctx: Context<Value>| async move {
            let k = ctx.get("k").cloned().unwrap_or_default();
            ctx.insert_or_update("ba_saw", k);
            Ok(ctx)
        })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("merge", Context::new()).await.expect("execute");
    assert_eq!(result.final_context.get("ba_saw"), Some(&json!("a")), "`a` is declared last for `ba`");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(the_final_context_merges_the_ends_of_the_run, |t| {
    // a -> b -> c, and a -> d (Skipped: its rule never holds) -> e (Skipped too). The ends of the
    // run are c (through b) and a's branch through d is cut, so a's output counts only through c.
    let wf = Workflow::builder("ends")
        .simple_task("a", &[], |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("from_a", json!(1));
            ctx.insert_or_update("scratch", json!("temporary"));
            Ok(ctx)
        })
        .simple_task("b", &["a"], |mut ctx: Context<Value>| async move {
            ctx.remove("scratch");
            ctx.insert_or_update("from_b", json!(2));
            Ok(ctx)
        })
        .simple_task("c", &["b"], |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("from_c", json!(3));
            Ok(ctx)
        })
        .task(
            TaskSpec { trigger_rule: TriggerRule::TaskFailed { task: "a".into() }, ..TaskSpec::new("d", &["a"]) },
            |ctx: Context<Value>| async move { Ok(ctx) },
        )
        .task(
            TaskSpec { trigger_rule: TriggerRule::AllDependenciesCompleted, ..TaskSpec::new("e", &["d"]) },
            |ctx: Context<Value>| async move { Ok(ctx) },
        )
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let mut input = Context::new();
    input.insert("given", json!(0)).expect("input");
    let result = runner.execute("ends", input).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Completed);
    let status = |n: &str| result.task_results.iter().find(|r| r.task_name == n).map(|r| r.task_status);
    assert_eq!((status("d"), status("e")), (Some(TaskStatus::Skipped), Some(TaskStatus::Skipped)));
    let mut keys: Vec<&str> = result.final_context.keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["from_a", "from_b", "from_c", "given"], "`scratch`, removed by b, stays removed");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_fatal_failure_skips_dependents_that_need_it_and_fails_the_pipeline, |t| {
    let needs = |name: &str, dep: &str| TaskSpec {
        trigger_rule: TriggerRule::AllDependenciesCompleted,
        ..TaskSpec::new(name, &[dep])
    };
    let wf = Workflow::builder("failing")
        .simple_task("boom", &[], |_ctx: Context<Value>| async move { Err(TaskError::fatal("bad input")) })
        .task(needs("after", "boom"), mark("after"))
        .task(needs("after_after", "after"), mark("after_after"))
        .task(
            TaskSpec {
                trigger_rule: TriggerRule::TaskFailed { task: "boom".into() },
                ..TaskSpec::new("cleanup", &["boom"])
            },
            mark("cleanup"),
        )
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("failing", Context::new()).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Failed);
    let status = |n: &str| result.task_results.iter().find(|r| r.task_name == n).map(|r| r.task_status);
    assert_eq!(status("boom"), Some(TaskStatus::Failed));
    assert_eq!(status("after"), Some(TaskStatus::Skipped));
    assert_eq!(status("after_after"), Some(TaskStatus::Skipped), "skips propagate");
    assert_eq!(status("cleanup"), Some(TaskStatus::Completed), "task_failed rule runs the cleanup");
    let boom = result.task_results.iter().find(|r| r.task_name == "boom").expect("boom");
    assert_eq!(boom.error_message.as_deref(), Some("bad input"));
    assert_eq!(result.error_message.as_deref(), Some("task `boom` failed"));
    assert_eq!(
        result.final_context.get("last"),
        Some(&json!("cleanup")),
        "a failed pipeline's final context is the last completed task's"
    );
    // The result handed over in process equals the one read back from the database.
    let stored = runner.attach(result.execution_id).await.expect("attach").wait_for_completion().await;
    assert_eq!(stored.expect("stored"), result);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_retryable_error_is_retried_with_backoff, |t| {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let retry = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff::Fixed,
        initial_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
        jitter: false,
        ..RetryPolicy::default()
    };
    let wf = Workflow::builder("flaky")
        .task(TaskSpec { retry, ..TaskSpec::new("flaky", &[]) }, move |mut ctx: Context<Value>| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n < 3 {
                    return Err(TaskError::retryable(format!("try {n}")));
                }
                ctx.insert("tries", json!(n))?;
                Ok(ctx)
            }
        })
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("flaky", Context::new()).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Completed);
    assert_eq!(result.task_results[0].attempts, 3);
    assert_eq!(result.final_context.get("tries"), Some(&json!(3)));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(timeouts_fail_a_task_once_attempts_are_spent, |t| {
    let wf = Workflow::builder("slow")
        .task(
            TaskSpec { timeout: Some(Duration::from_millis(50)), retry: quick_retry(2), ..TaskSpec::new("slow", &[]) },
            |ctx: Context<Value>| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(ctx)
            },
        )
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("slow", Context::new()).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Failed);
    assert!(result.task_results[0]
        .error_message
        .as_deref()
        .is_some_and(|m| m.starts_with("Task timeout: slow exceeded")));
    assert_eq!(result.task_results[0].attempts, 2, "a timeout is retried while attempts remain");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(context_rules_choose_a_branch, |t| {
    let when = |op, value: Value| TriggerRule::ContextValue { key: "size".into(), op, value };
    let wf = Workflow::builder("branch")
        .simple_task("measure", &[], |mut ctx: Context<Value>| async move {
            ctx.insert("size", json!(10))?;
            Ok(ctx)
        })
        .task(
            TaskSpec { trigger_rule: when(ValueOperator::GreaterThan, json!(5)), ..TaskSpec::new("big", &["measure"]) },
            mark("big"),
        )
        .task(
            TaskSpec { trigger_rule: when(ValueOperator::LessThan, json!(5)), ..TaskSpec::new("small", &["measure"]) },
            mark("small"),
        )
        .task(
            TaskSpec { trigger_rule: TriggerRule::Always, ..TaskSpec::new("report", &["big", "small"]) },
            mark("report"),
        )
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("branch", Context::new()).await.expect("execute");
    let status = |n: &str| result.task_results.iter().find(|r| r.task_name == n).map(|r| r.task_status);
    assert_eq!(
        (status("big"), status("small"), status("report")),
        (Some(TaskStatus::Completed), Some(TaskStatus::Skipped), Some(TaskStatus::Completed))
    );
    assert_eq!(result.status, WorkflowStatus::Completed);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(cancel_stops_tasks_that_have_not_started, |t| {
    let (wf, gate) = first_then_second("long");
    let runner = runner(&t, vec![wf]).await;
    let handle = runner.execute_async("long", Context::new()).await.expect("start");
    let id = handle.execution_id();
    wait_for(|| async { status_of(&rows_of(&runner, id).await, "first") == Some(TaskStatus::Running) }).await;
    assert!(handle.cancel().await.expect("cancel"));
    assert!(!handle.cancel().await.expect("cancel twice"));
    let result = handle.wait_for_completion().await.expect("wait");
    assert_eq!(result.status, WorkflowStatus::Cancelled);
    // `first` was running: it ends and is recorded, and its dependent stays cancelled.
    gate.add_permits(1);
    wait_for(|| async { status_of(&rows_of(&runner, id).await, "first") == Some(TaskStatus::Completed) }).await;
    assert_eq!(status_of(&rows_of(&runner, id).await, "second"), Some(TaskStatus::Cancelled));
    runner.shutdown().await.expect("shutdown");
});

engine_test!(unknown_workflows_are_refused, |t| {
    let runner = runner(&t, vec![diamond()]).await;
    let err = runner.execute("nope", Context::new()).await.expect_err("unknown");
    assert!(matches!(err, cloacina::Error::UnknownWorkflow(ref n) if n == "nope"), "{err}");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(a_waiting_retry_survives_a_restart_of_every_runner, |t| {
    let calls = Arc::new(AtomicU32::new(0));
    let make = |calls: Arc<AtomicU32>| {
        let retry = RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::Fixed,
            initial_delay: Duration::from_millis(700),
            max_delay: Duration::from_millis(700),
            jitter: false,
            ..RetryPolicy::default()
        };
        Workflow::builder("restart")
            .task(TaskSpec { retry, ..TaskSpec::new("once_flaky", &[]) }, move |ctx: Context<Value>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(TaskError::retryable("first try fails"))
                    } else {
                        Ok(ctx)
                    }
                }
            })
            .build()
            .expect("wf")
    };
    let first = runner(&t, vec![make(calls.clone())]).await;
    let handle = first.execute_async("restart", Context::new()).await.expect("start");
    let id = handle.execution_id();
    // Wait until the first attempt failed and the retry is waiting.
    let mut waiting = None;
    for _ in 0..500 {
        let rows = first
            .database()
            .run(move |c| cloacina::dal::task_executions::list_for_pipeline(c, id))
            .await
            .expect("rows");
        if rows[0].status == TaskStatus::Ready && rows[0].attempt == 2 {
            waiting = Some(rows[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = waiting.expect("the retry is a Ready row");
    assert!(waiting.retry_at.is_some_and(|at| at > chrono::Utc::now()), "retry_at is in the future");
    first.shutdown().await.expect("shutdown");
    drop(first);
    let second = runner(&t, vec![make(calls.clone())]).await;
    assert_eq!(handle_for(&second, id).await, WorkflowStatus::Completed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    second.shutdown().await.expect("shutdown");
});

engine_test!(a_paused_pipeline_claims_nothing_until_resumed, |t| {
    let (wf, gate) = first_then_second("pausable");
    let version = wf.version().to_owned();
    let runner = runner(&t, vec![wf]).await;
    let handle = runner.execute_async("pausable", Context::new()).await.expect("start");
    let id = handle.execution_id();
    // Pause while `first` runs, then let it finish: states, not sleeps.
    wait_for(|| async { status_of(&rows_of(&runner, id).await, "first") == Some(TaskStatus::Running) }).await;
    assert!(runner.pause(id).await.expect("pause"));
    assert!(!runner.pause(id).await.expect("pause twice"));
    gate.add_permits(1);
    wait_for(|| async { status_of(&rows_of(&runner, id).await, "first") == Some(TaskStatus::Completed) }).await;
    // `second` became Ready, but the claim (the runner's own statement) passes it over.
    assert_eq!(status_of(&rows_of(&runner, id).await, "second"), Some(TaskStatus::Ready));
    let now = cloacina::database::UniversalTimestamp::now();
    let claimed = runner
        .database()
        .run(move |c| {
            cloacina::dal::task_executions::claim_ready(c, "probe", &[version], 10, Duration::from_secs(30), now)
        })
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "a paused pipeline's tasks are not claimed: {claimed:?}");
    assert_eq!(runner.get_execution_status(id).await.expect("status"), WorkflowStatus::Paused);
    assert!(runner.resume(id).await.expect("resume"));
    let result = handle.wait_for_completion().await.expect("wait");
    assert_eq!(result.status, WorkflowStatus::Completed);
    runner.shutdown().await.expect("shutdown");
});

engine_test!(shutdown_cancels_tasks_still_running_at_its_deadline_before_giving_them_back, |t| {
    /// Set when the attempt's future is dropped (cancelled) and when its code ran to the end.
    #[derive(Default)]
    struct Seen {
        started: AtomicU32,
        cancelled: AtomicU32,
        finished: AtomicU32,
    }
    struct OnDrop(Arc<Seen>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
    let wf = |seen: Arc<Seen>| {
        Workflow::builder("stubborn")
            .simple_task("slow", &[], move |ctx: Context<Value>| {
                let seen = seen.clone();
                async move {
                    seen.started.fetch_add(1, Ordering::SeqCst);
                    let guard = OnDrop(seen.clone());
                    // The first execution outlasts the shutdown deadline; the one after it does not.
                    let attempt = cloacina::task::TaskAttempt::current().expect("inside task code").attempt;
                    if attempt == 1 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    std::mem::forget(guard); // ran to the end: not cancelled
                    seen.finished.fetch_add(1, Ordering::SeqCst);
                    Ok(ctx)
                }
            })
            .build()
            .expect("wf")
    };
    let config = DefaultRunnerConfig { shutdown_timeout: Duration::from_millis(100), ..config(&t) };
    let first_seen = Arc::new(Seen::default());
    let first = DefaultRunner::builder(t.url.clone())
        .config(config.clone())
        .workflow(wf(first_seen.clone()))
        .build()
        .await
        .expect("first");
    let handle = first.execute_async("stubborn", Context::new()).await.expect("start");
    let id = handle.execution_id();
    wait_for(|| async { first_seen.started.load(Ordering::SeqCst) == 1 }).await;
    first.shutdown().await.expect("shutdown");
    // The attempt was cancelled before shutdown returned, and only then given back.
    assert_eq!(first_seen.cancelled.load(Ordering::SeqCst), 1, "the running attempt was cancelled");
    assert_eq!(first_seen.finished.load(Ordering::SeqCst), 0);
    let rows =
        first.database().run(move |c| cloacina::dal::task_executions::list_for_pipeline(c, id)).await.expect("rows");
    assert_eq!(
        (rows[0].status, rows[0].attempt, rows[0].max_attempts, rows[0].claimed_by.clone()),
        (TaskStatus::Ready, 2, 4, None),
        "given back as a new execution (3 attempts by default), not charged against the retry budget"
    );
    let events =
        first.database().run(move |c| cloacina::dal::recovery_events::list_for_pipeline(c, id)).await.expect("events");
    assert_eq!(events.iter().map(|e| e.recovery_type.as_str()).collect::<Vec<_>>(), ["task_released"]);
    drop(first);
    let second_seen = Arc::new(Seen::default());
    let second = DefaultRunner::builder(t.url.clone())
        .config(config)
        .workflow(wf(second_seen.clone()))
        .build()
        .await
        .expect("second");
    assert_eq!(handle_for(&second, id).await, WorkflowStatus::Completed);
    assert_eq!(second_seen.finished.load(Ordering::SeqCst), 1);
    assert_eq!(first_seen.finished.load(Ordering::SeqCst), 0, "the cancelled attempt never resumed");
    second.shutdown().await.expect("shutdown");
});

/// Polls until pipeline `id` is terminal (it was started by another runner).
async fn handle_for(runner: &DefaultRunner, id: cloacina::models::PipelineExecutionId) -> WorkflowStatus {
    for _ in 0..200 {
        let status = runner.get_execution_status(id).await.expect("status");
        if status.is_terminal() {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pipeline {id} did not finish");
}

/// Polls `probe` every 20 ms until it holds (fails the test after 20 s).
pub(crate) async fn wait_for<F, Fut>(mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1_000 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached within 20 s");
}

engine_test!(task_code_knows_its_run_task_and_attempt, |t| {
    let retry = quick_retry(2);
    let wf = Workflow::builder("introspective")
        .task(TaskSpec { retry, ..TaskSpec::new("me", &[]) }, |mut ctx: Context<Value>| async move {
            let a = cloacina::task::TaskAttempt::current().expect("inside task code");
            ctx.insert_or_update(
                format!("attempt_{}", a.attempt),
                json!([a.pipeline_execution_id, a.task_execution_id]),
            );
            ctx.insert_or_update("seen", json!([a.workflow_name, a.task_name, a.max_attempts]));
            if a.attempt == 1 {
                return Err(TaskError::retryable("once more"));
            }
            Ok(ctx)
        })
        .build()
        .expect("wf");
    assert!(cloacina::task::TaskAttempt::current().is_none(), "outside task code there is none");
    let runner = runner(&t, vec![wf]).await;
    let result = runner.execute("introspective", Context::new()).await.expect("execute");
    assert_eq!(result.status, WorkflowStatus::Completed);
    let id = result.execution_id;
    let rows = runner.database().run(move |c| cloacina::dal::task_executions::list_for_pipeline(c, id)).await;
    let row = rows.expect("rows").remove(0);
    assert_eq!(result.final_context.get("attempt_2"), Some(&json!([id, row.id])), "the same ids on every attempt");
    assert_eq!(result.final_context.get("attempt_1"), None, "the failed attempt's output is not kept");
    assert_eq!(result.final_context.get("seen"), Some(&json!(["introspective", "me", 2])));
    runner.shutdown().await.expect("shutdown");
});

engine_test!(task_code_that_ignores_cancellation_keeps_its_claim_for_recovery, |t| {
    let started = Arc::new(AtomicU32::new(0));
    let wf = |started: Arc<AtomicU32>| {
        let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
        Workflow::builder("blocking")
            .task(TaskSpec { retry, ..TaskSpec::new("blocks", &[]) }, move |ctx: Context<Value>| {
                started.fetch_add(1, Ordering::SeqCst);
                let first = cloacina::task::TaskAttempt::current().is_some_and(|a| a.attempt == 1);
                async move {
                    if first {
                        // Never yields: cancellation cannot stop it.
                        std::thread::sleep(Duration::from_millis(3_000));
                    }
                    Ok(ctx)
                }
            })
            .build()
            .expect("wf")
    };
    let config = DefaultRunnerConfig {
        shutdown_timeout: Duration::from_millis(100),
        lease_duration: Duration::from_millis(1_000),
        heartbeat_interval: Duration::from_millis(200),
        recovery_interval: Duration::from_millis(100),
        ..config(&t)
    };
    let first = DefaultRunner::builder(t.url.clone())
        .config(config.clone())
        .workflow(wf(started.clone()))
        .build()
        .await
        .expect("first");
    let id = first.execute_async("blocking", Context::new()).await.expect("start").execution_id();
    wait_for(|| async { started.load(Ordering::SeqCst) == 1 }).await;
    first.shutdown().await.expect("shutdown");
    let rows =
        first.database().run(move |c| cloacina::dal::task_executions::list_for_pipeline(c, id)).await.expect("rows");
    assert_eq!(
        (rows[0].status, rows[0].claimed_by.as_deref()),
        (TaskStatus::Running, Some(first.runner_name())),
        "not given back while its code may still run"
    );
    drop(first);
    let second = DefaultRunner::builder(t.url.clone()).config(config).workflow(wf(started.clone())).build().await;
    let second = second.expect("second");
    assert_eq!(handle_for(&second, id).await, WorkflowStatus::Completed);
    let events =
        second.database().run(move |c| cloacina::dal::recovery_events::list_for_pipeline(c, id)).await.expect("events");
    assert_eq!(events.iter().map(|e| e.recovery_type.as_str()).collect::<Vec<_>>(), ["task_requeued"]);
    second.shutdown().await.expect("shutdown");
});

// NUL characters: refused on the way in (naming the key), an output holding one fails its task
// with that reason (never an outcome that cannot be recorded), and an error text holding one is
// stored with U+FFFD. One rule on both backends.
engine_test!(nul_characters_are_refused_in_and_never_stall_a_run, |t| {
    let mut nul_output = TaskSpec::new("nul_output", &[]);
    nul_output.retry = quick_retry(1);
    let mut nul_error = TaskSpec::new("nul_error", &[]);
    nul_error.retry = quick_retry(1);
    let workflows = vec![
        Workflow::builder("nul_output")
            .task(nul_output, |mut ctx: Context<Value>| async move {
                ctx.insert_or_update("out", json!({"deep": ["fine", "bad\u{0}"]}));
                Ok(ctx)
            })
            .build()
            .expect("workflow"),
        Workflow::builder("nul_error")
            .task(nul_error, |_ctx: Context<Value>| async move { Err(TaskError::fatal("broken\u{0}text")) })
            .build()
            .expect("workflow"),
    ];
    let runner = runner(&t, workflows).await;
    let mut input = Context::new();
    input.insert("name", json!("a\u{0}b")).expect("insert");
    let refused = runner.execute("nul_output", input).await.expect_err("a NUL in the input");
    assert_eq!(refused.kind(), cloacina::ErrorKind::InvalidInput);
    assert!(refused.to_string().contains("`context.name` holds a NUL character"), "{refused}");

    let failed = runner.execute("nul_output", Context::new()).await.expect("execute");
    assert_eq!(failed.status, WorkflowStatus::Failed);
    let error = failed.task_results[0].error_message.clone().unwrap_or_default();
    assert!(error.contains("`output.out.deep[1]` holds a NUL character"), "{error}");

    let failed = runner.execute("nul_error", Context::new()).await.expect("execute");
    assert_eq!(failed.status, WorkflowStatus::Failed);
    let error = failed.task_results[0].error_message.clone().unwrap_or_default();
    assert!(error.contains("broken\u{FFFD}text"), "{error}");
    runner.shutdown().await.expect("shutdown");
});

engine_test!(two_workflows_of_one_name_are_refused_by_name, |t| {
    let wf = |marker: &'static str| {
        Workflow::builder("twice")
            .task(TaskSpec::new(marker, &[]), |ctx: Context<Value>| async move { Ok(ctx) })
            .build()
            .expect("workflow")
    };
    let refused =
        DefaultRunner::builder(t.url.clone()).config(config(&t)).workflow(wf("a")).workflow(wf("b")).build().await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("two workflows named `twice`"), "{error}");
});
