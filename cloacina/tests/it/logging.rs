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
/// A span's name, fields and parent.
type SpanInfo = (String, BTreeMap<String, String>, Option<u64>);

/// Every span, by id (ids start at 1).
static SPANS: Mutex<Vec<SpanInfo>> = Mutex::new(Vec::new());

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}
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

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let parent = span.parent().map(Id::into_u64).or_else(|| {
            if span.is_contextual() {
                ENTERED.with(|e| e.borrow().last().copied())
            } else {
                None
            }
        });
        let mut spans = SPANS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        spans.push((span.metadata().name().to_owned(), fields, parent));
        Id::from_u64(spans.len() as u64)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if ACTIVE.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        // The fields of the spans the event happened in, as `<span>.<field>`.
        let spans = SPANS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut current = ENTERED.with(|e| e.borrow().last().copied());
        while let Some((name, span_fields, parent)) = current.and_then(|id| spans.get(id as usize - 1)) {
            for (k, v) in span_fields {
                fields.insert(format!("{name}.{k}"), v.clone());
            }
            current = *parent;
        }
        drop(spans);
        let seen = Seen { level: *event.metadata().level(), fields };
        SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(seen);
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, _span: &Id) {
        ENTERED.with(|e| {
            e.borrow_mut().pop();
        });
    }
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
    let of = |s: &&Seen| {
        [s.fields.get("pipeline"), s.fields.get("pipeline.pipeline")].into_iter().flatten().any(|p| p == id)
    };
    seen.iter().filter(of).cloned().collect()
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
        .simple_task("first", &[], |ctx: Context<Value>| async move {
            tracing::info!(target: "cloacina::user_task", "hello from task code");
            Ok(ctx)
        })
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
    // What task code logs carries the attempt's span and its pipeline's span.
    assert!(
        has(
            &events,
            Level::INFO,
            "hello from task code",
            &[("task.task", "first"), ("task.attempt", "1"), ("pipeline.workflow", "logged")]
        ),
        "{events:#?}"
    );
    let _ = runner.get_execution_result(result.execution_id).await.expect("stored");
    runner.shutdown().await.expect("shutdown");
});
