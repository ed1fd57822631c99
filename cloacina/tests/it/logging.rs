//! What an operator sees in the log (issue 12): with a subscriber at debug level for `cloacina`,
//! a run's task ready, started, completed, failed (with its error) and retry-scheduled (with delay
//! and attempt) events and its end, each with the pipeline id as a field. On both backends.
//!
//! The capturing subscriber is installed once for this test binary (tracing allows one global
//! default). It keeps events only while a logging test runs (other tests' events outside that
//! window are dropped, so memory stays bounded); each test picks its own pipeline's events by the
//! `pipeline` field.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::engine::{engine_test, runner};
use cloacina::executor::{PipelineExecutor, WorkflowStatus};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError};

/// One captured event: its level and fields (`message` included).
#[derive(Debug, Clone)]
struct Seen {
    level: Level,
    fields: BTreeMap<String, String>,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
/// Logging tests running now: events are kept only while it is above zero.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

struct Capture;

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("cloacina") && *metadata.level() <= Level::DEBUG
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if ACTIVE.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let seen = Seen { level: *event.metadata().level(), fields };
        SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(seen);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture).expect("no other global subscriber in this binary");
    });
}

/// The events naming pipeline `id`, as (level, message, fields).
fn events_of(id: &str) -> Vec<Seen> {
    let seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    seen.iter().filter(|s| s.fields.get("pipeline").is_some_and(|p| p == id)).cloned().collect()
}

fn has(events: &[Seen], level: Level, message: &str, fields: &[(&str, &str)]) -> bool {
    events.iter().any(|e| {
        e.level == level
            && e.fields.get("message").is_some_and(|m| m == message)
            && fields.iter().all(|(k, v)| e.fields.get(*k).is_some_and(|got| got.contains(v)))
    })
}

engine_test!(a_runs_life_is_in_the_log_with_its_pipeline_id, |t| {
    install();
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let wf = Workflow::builder("logged")
        .simple_task("first", &[], |ctx: Context<Value>| async move { Ok(ctx) })
        .task(
            TaskSpec { retry: crate::engine::quick_retry(2), ..TaskSpec::new("flaky", &["first"]) },
            |_ctx| async move { Err(TaskError::retryable("upstream timed out")) },
        )
        .build()
        .expect("wf");
    let runner = runner(&t, vec![wf]).await;
    let handle = runner.execute_async("logged", Context::new()).await.expect("start");
    let id = handle.execution_id().to_string();
    let result = handle.wait_for_completion().await.expect("result");
    ACTIVE.fetch_sub(1, Ordering::SeqCst);
    assert_eq!(result.status, WorkflowStatus::Failed);
    let events = events_of(&id);
    let error = "Task execution failed: upstream timed out";
    assert!(has(&events, Level::DEBUG, "task started", &[("task", "first"), ("attempt", "1")]), "{events:#?}");
    assert!(has(&events, Level::DEBUG, "task completed", &[("task", "first")]), "{events:#?}");
    let ready = |e: &Seen| e.fields.get("tasks").is_some_and(|t| t.contains("flaky"));
    assert!(
        events.iter().any(|e| e.fields.get("message").is_some_and(|m| m.starts_with("tasks ready")) && ready(e)),
        "{events:#?}"
    );
    assert!(
        has(
            &events,
            Level::INFO,
            "task failed; retry scheduled",
            &[("task", "flaky"), ("attempt", "1"), ("error", error), ("delay", "10ms")]
        ),
        "{events:#?}"
    );
    assert!(
        has(&events, Level::WARN, "task failed", &[("task", "flaky"), ("attempt", "2"), ("error", error)]),
        "{events:#?}"
    );
    assert!(has(&events, Level::INFO, "pipeline ended", &[("status", "Failed")]), "{events:#?}");
    assert!(has(&events, Level::DEBUG, "pipeline created", &[("workflow", "logged")]), "{events:#?}");
    let _ = runner.get_execution_result(result.execution_id).await.expect("stored");
    runner.shutdown().await.expect("shutdown");
});
