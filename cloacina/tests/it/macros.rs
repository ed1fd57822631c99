//! Workflows written with `#[workflow]` / `#[task]`: they register themselves, and their
//! attributes (ids, dependencies, retries, timeouts, trigger rules, hooks) reach the engine.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::retry::RetryCondition;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::{task, workflow, Context, TaskError, TaskStatus};

/// Runs (by their `run` input) whose `transform` already failed once: tests run in parallel.
static FAILED_ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

#[workflow(name = "macro_etl", description = "Extract, transform, load")]
pub mod etl {
    use super::*;

    #[task(id = "extract", dependencies = [])]
    pub async fn extract(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        context.insert("rows", serde_json::json!(3))?;
        Ok(())
    }

    /// No `id`: the function name is the id.
    #[task(dependencies = ["extract"], retry_attempts = 3, retry_backoff = "fixed", retry_delay_ms = 10, retry_jitter = false)]
    pub async fn transform(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let run: String = context.get_as("run")?.unwrap_or_default();
        let first = FAILED_ONCE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(HashSet::new)
            .insert(run);
        if first {
            return Err(TaskError::retryable("first attempt fails"));
        }
        let rows: i64 = context.get_as("rows")?.unwrap_or_default();
        context.insert("doubled", serde_json::json!(rows * 2))?;
        Ok(())
    }

    #[task(id = "load", dependencies = ["transform"], timeout_ms = 5_000, retry_condition = "pattern:down, unavailable")]
    pub async fn load(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        context.insert("loaded", serde_json::json!(true))?;
        Ok(())
    }

    #[task(
        id = "big_batch_alert",
        dependencies = ["transform"],
        trigger_rules = all(task_success("transform"), context_value("doubled", greater_than, 100))
    )]
    pub async fn big_batch_alert(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        context.insert("alerted", serde_json::json!(true))?;
        Ok(())
    }

    #[task(id = "report", dependencies = ["load", "big_batch_alert"], trigger_rules = any(task_success("load"), always))]
    pub async fn report(_context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        Ok(())
    }
}

#[test]
fn the_macro_builds_the_declared_graph() {
    let wf = etl::workflow();
    assert_eq!(wf.name(), "macro_etl");
    assert_eq!(wf.spec().description(), Some("Extract, transform, load"));
    let transform = wf.spec().task("transform").expect("fn name is the id");
    assert_eq!(transform.dependencies, ["extract"]);
    assert_eq!(transform.retry.max_attempts, 3);
    assert_eq!(wf.spec().task("load").and_then(|t| t.timeout), Some(Duration::from_millis(5_000)));
    let load = wf.spec().task("load").expect("load");
    assert_eq!(
        load.retry.retry_conditions,
        [RetryCondition::ErrorPattern { patterns: vec!["down".into(), "unavailable".into()] }]
    );
    // Upstream's defaults for a bare `#[task]`: three attempts, every error retried, rule `always`.
    let extract = wf.spec().task("extract").expect("extract");
    assert_eq!(extract.retry.max_attempts, 3);
    assert_eq!(extract.retry.retry_conditions, [RetryCondition::AllErrors]);
    assert_eq!(extract.trigger_rule, cloacina::task::TriggerRule::Always);
    assert!(cloacina::workflow::registered().iter().any(|w| w.name() == "macro_etl"), "it registered itself");
}

/// Upstream's `<function>_task()` constructors: one task on its own, to unit-test one attempt or
/// to assemble a workflow by hand.
#[tokio::test]
async fn each_task_has_an_upstream_style_constructor() {
    let extract = etl::extract_task();
    assert_eq!((extract.id(), extract.dependencies()), ("extract", &[] as &[String]));
    let out = extract.execute(Context::new()).await.expect("one attempt");
    assert_eq!(out.get("rows"), Some(&serde_json::json!(3)));

    let load = etl::load_task();
    assert_eq!(load.dependencies(), ["transform"]);
    assert_eq!(
        load.spec(),
        etl::workflow().spec().task("load").expect("load"),
        "the same declaration as the workflow's"
    );

    let mut input = Context::new();
    input.insert("run", serde_json::json!(format!("constructor-{}", uuid::Uuid::new_v4()))).expect("input");
    let failed = etl::transform_task().execute(input).await.expect_err("its first attempt fails");
    assert!(failed.to_string().contains("first attempt fails"), "{failed}");

    let by_hand = cloacina::Workflow::builder("assembled")
        .with_task(etl::extract_task())
        .with_task(cloacina::workflow::TaskDefinition::new(
            cloacina::workflow::TaskSpec::new("after", &["extract"]),
            |ctx: Context<serde_json::Value>| async move { Ok(ctx) },
        ))
        .build()
        .expect("a valid graph");
    assert_eq!(by_hand.spec().task("after").expect("after").dependencies, ["extract"]);
}

crate::harness::backend_test!(a_macro_workflow_runs_on_the_engine, |t| {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let config = DefaultRunnerConfig {
            schema: t.db.schema().map(str::to_owned),
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        };
        // No workflow passed in: `#[workflow]` registered it.
        let runner = DefaultRunner::with_config(&t.url, config).await.expect("runner");
        let mut input = Context::new();
        input.insert("run", serde_json::json!(uuid::Uuid::new_v4().to_string())).expect("input");
        let result = runner.execute("macro_etl", input).await.expect("execute");
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert_eq!(result.final_context.get("rows"), Some(&serde_json::json!(3)));
        assert_eq!(result.final_context.get("doubled"), Some(&serde_json::json!(6)));
        let task = |n: &str| result.task_results.iter().find(|r| r.task_name == n).cloned().expect("task");
        assert_eq!(task("transform").attempts, 2, "retried once");
        assert_eq!(task("big_batch_alert").status, TaskStatus::Skipped, "6 is not > 100");
        assert_eq!(task("report").status, TaskStatus::Completed);
        runner.shutdown().await.expect("shutdown");
    });
});

/// Cycles, unknown dependencies, duplicate ids and wrong signatures are compile errors that
/// point at the offending token (expected messages in `tests/ui/*.stderr`). Run once, with both
/// backends compiled in: trybuild builds its own copy of the dependencies.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn bad_workflows_do_not_compile() {
    trybuild::TestCases::new().compile_fail(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/*.rs"));
}

/// Hook calls seen, as (run, task, what): tests run in parallel, so each run has its own id.
static HOOK_CALLS: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());

fn run_of(context: &Context<serde_json::Value>) -> String {
    context.get("run").and_then(|v| v.as_str()).unwrap_or_default().to_owned()
}

async fn note_success(
    task_id: &str,
    context: &Context<serde_json::Value>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let entry = (run_of(context), task_id.to_owned(), "ok".to_owned());
    HOOK_CALLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(entry);
    Ok(())
}

async fn note_failure(
    task_id: &str,
    error: &cloacina::cloacina_workflow::TaskError,
    context: &Context<serde_json::Value>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let entry = (run_of(context), task_id.to_owned(), error.to_string());
    HOOK_CALLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(entry);
    Ok(())
}

#[workflow(name = "macro_hooks")]
pub mod hooked {
    use super::*;

    #[task(on_success = note_success)]
    pub async fn fine(_context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        Ok(())
    }

    #[task(dependencies = ["fine"], retry_condition = "never", on_failure = note_failure)]
    pub async fn broken(_context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        Err(TaskError::ValidationFailed { message: "bad input".into() })
    }
}

crate::harness::backend_test!(macro_hooks_run_after_the_outcome, |t| {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let config = DefaultRunnerConfig {
            schema: t.db.schema().map(str::to_owned),
            poll_interval: Duration::from_millis(50),
            ..Default::default()
        };
        let runner = DefaultRunner::with_config(&t.url, config).await.expect("runner");
        let run = uuid::Uuid::new_v4().to_string();
        let mut input = Context::new();
        input.insert("run", serde_json::json!(run)).expect("input");
        let result = runner.execute("macro_hooks", input).await.expect("execute");
        assert_eq!(result.status, WorkflowStatus::Failed);
        let mine = || {
            let calls = HOOK_CALLS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut mine: Vec<(String, String)> =
                calls.iter().filter(|c| c.0 == run).map(|c| (c.1.clone(), c.2.clone())).collect();
            mine.sort();
            mine
        };
        crate::harness::wait_until("both hooks ran", Duration::from_secs(30), || (mine().len() == 2).then_some(()));
        assert_eq!(
            mine(),
            [("broken".into(), "Task validation failed: bad input".into()), ("fine".into(), "ok".into())]
        );
        runner.shutdown().await.expect("shutdown");
    });
});

#[workflow(name = "macro_deferred")]
pub mod deferred {
    use super::*;
    use cloacina::task::TaskHandle;

    /// Takes its handle as upstream's tasks do, and defers until a condition that already holds.
    #[task]
    pub async fn patient(context: &mut Context<serde_json::Value>, handle: &mut TaskHandle) -> Result<(), TaskError> {
        let held_before = handle.holds_slot();
        handle.defer_until(|| async { true }, Duration::from_millis(1)).await?;
        context.insert("held_before", serde_json::json!(held_before))?;
        context.insert("held_after", serde_json::json!(handle.holds_slot()))?;
        Ok(())
    }
}

crate::harness::backend_test!(a_macro_task_takes_its_handle, |t| {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async move {
        let config = DefaultRunnerConfig { schema: t.db.schema().map(str::to_owned), ..Default::default() };
        let runner = DefaultRunner::with_config(&t.url, config).await.expect("runner");
        let result = runner.execute("macro_deferred", Context::new()).await.expect("execute");
        assert_eq!(result.status, WorkflowStatus::Completed);
        assert_eq!(result.final_context.get("held_before"), Some(&serde_json::json!(true)));
        assert_eq!(result.final_context.get("held_after"), Some(&serde_json::json!(true)));
        runner.shutdown().await.expect("shutdown");
    });
});
