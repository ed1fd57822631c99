//! `TestRunner` follows the engine's rules without a database: dependency order, the default
//! `always` rule, other trigger rules, the input merge, the final context (completed and failed
//! runs), and assertion helpers that fail with the task's name.

use cloacina::task::{TriggerRule, ValueOperator};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError};
use cloacina_testing::{TaskOutcome, TestRunner, TestRunnerError};
use serde_json::{json, Value};

fn put(
    key: &'static str,
    value: Value,
) -> impl Fn(Context<Value>) -> std::future::Ready<Result<Context<Value>, TaskError>> {
    move |mut ctx: Context<Value>| {
        ctx.insert_or_update(key, value.clone());
        std::future::ready(Ok(ctx))
    }
}

#[tokio::test]
async fn a_diamond_runs_in_order_and_merges_like_the_engine() {
    let wf = Workflow::builder("diamond")
        .simple_task("extract", &[], put("rows", json!(3)))
        .simple_task("left", &["extract"], |mut ctx: Context<Value>| async move {
            let rows: i64 = ctx.get_required("rows")?;
            ctx.insert("left", json!(rows + 1))?;
            ctx.insert_or_update("winner", json!("left"));
            Ok(ctx)
        })
        .simple_task("right", &["extract"], put("winner", json!("right")))
        .simple_task("join", &["left", "right"], |mut ctx: Context<Value>| async move {
            let winner: String = ctx.get_required("winner")?;
            ctx.insert("joined_after", json!(winner))?;
            Ok(ctx)
        })
        .build()
        .expect("wf");
    let result = TestRunner::new().workflow(wf).run(Context::new()).await.expect("run");
    result.assert_all_completed();
    assert_eq!(result.task_outcomes.len(), 4);
    assert_eq!(result.context.get("left"), Some(&json!(4)));
    assert_eq!(result.context.get("joined_after"), Some(&json!("right")), "later dependencies win the merge");
}

#[tokio::test]
async fn a_failure_does_not_stop_the_default_rule_but_skips_stricter_ones() {
    let wf = Workflow::builder("failing")
        .simple_task("first", &[], put("first", json!(true)))
        .simple_task("boom", &["first"], |_ctx: Context<Value>| async move { Err(TaskError::fatal("broken")) })
        .simple_task("report", &["boom"], put("reported", json!(true)))
        .task(
            TaskSpec { trigger_rule: TriggerRule::AllDependenciesCompleted, ..TaskSpec::new("publish", &["boom"]) },
            put("published", json!(true)),
        )
        .build()
        .expect("wf");
    let result = TestRunner::new().workflow(wf).run(Context::new()).await.expect("run");
    result.assert_task_completed("first");
    result.assert_task_failed("boom");
    result.assert_task_completed("report");
    result.assert_task_skipped("publish");
    assert!(matches!(result.outcome("boom"), Some(TaskOutcome::Failed(e)) if e.to_string() == "broken"));
    // A failed run's final context is the last completed task's output.
    assert_eq!(result.context.get("reported"), Some(&json!(true)));
    assert_eq!(result.context.get("published"), None);
}

#[tokio::test]
async fn context_rules_choose_a_branch() {
    let rule = |op, value: Value| TriggerRule::ContextValue { key: "amount".into(), op, value };
    let wf = Workflow::builder("routing")
        .simple_task("classify", &[], |ctx: Context<Value>| async move { Ok(ctx) })
        .task(
            TaskSpec {
                trigger_rule: rule(ValueOperator::GreaterThan, json!(1000)),
                ..TaskSpec::new("review", &["classify"])
            },
            put("path", json!("review")),
        )
        .task(
            TaskSpec {
                trigger_rule: rule(ValueOperator::LessThan, json!(1000)),
                ..TaskSpec::new("approve", &["classify"])
            },
            put("path", json!("approve")),
        )
        .build()
        .expect("wf");
    let mut input = Context::new();
    input.insert("amount", json!(250)).expect("input");
    let result = TestRunner::new().workflow(wf).run(input).await.expect("run");
    result.assert_task_skipped("review");
    result.assert_task_completed("approve");
    assert_eq!(result.context.get("path"), Some(&json!("approve")));
}

#[tokio::test]
async fn assertions_name_the_task_and_a_missing_workflow_is_an_error() {
    let wf = Workflow::builder("one").simple_task("only", &[], put("x", json!(1))).build().expect("wf");
    let result = TestRunner::new().workflow(wf).run(Context::new()).await.expect("run");
    let failed = std::panic::catch_unwind(|| result.assert_task_failed("only")).expect_err("it completed");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("task `only` was expected to be failed"), "{message}");
    let missing = std::panic::catch_unwind(|| result.assert_task_completed("ghost")).expect_err("no such task");
    assert!(missing.downcast_ref::<String>().is_some_and(|m| m.contains("no task `ghost`")));
    assert!(matches!(TestRunner::new().run(Context::new()).await, Err(TestRunnerError::NoWorkflow)));
}
