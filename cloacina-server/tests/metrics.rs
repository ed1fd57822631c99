//! `/metrics` with the engine's metrics (a Prometheus recorder installed in this test process, as
//! an application would) and the gauges read from the database, parsed with a Prometheus text
//! parser, on SQLite and on PostgreSQL.

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::Context;
use cloacina_server::{router, ServerConfig};
use http_body_util::BodyExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use prometheus_parse::{Scrape, Value};
use support::{block_on, runner, TestDb};
use tokio::sync::watch;
use tower::ServiceExt;

/// One recorder per process (the facade takes one), shared by both backends' tests.
fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap()).clone()
}

fn value(scrape: &Scrape, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(ref h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(ref q) => q.len() as f64,
        })
        .reduce(f64::max)
}

async fn scrape_after_runs(t: TestDb) {
    let handle = handle();
    let (open, gate) = watch::channel(false);
    let runner = runner(&t, &gate).await;
    assert_eq!(runner.execute("ok_flow", Context::new()).await.unwrap().status, WorkflowStatus::Completed);
    assert_eq!(runner.execute("bad_flow", Context::new()).await.unwrap().status, WorkflowStatus::Failed);
    let _waiting = runner.execute_async("slow_flow", Context::new()).await.unwrap();
    let render = Arc::new(move || handle.render());
    let app = router(t.open(), ServerConfig { render_metrics: Some(render), ..Default::default() });
    let scrape = || async {
        let response = app.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        (text, parsed)
    };
    // Wait (on what the scrape shows) until the waiting run's task has been claimed and started.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (text, scrape) = loop {
        let (text, parsed) = scrape().await;
        let started = value(&parsed, "cloacina_tasks_started_total", Some(("workflow", "slow_flow")));
        if started.is_some() && value(&parsed, "cloacina_runs", Some(("status", "Running"))) == Some(1.0) {
            break (text, parsed);
        }
        assert!(std::time::Instant::now() < deadline, "slow_flow's task never started: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // The engine's metrics, by workflow.
    assert!(value(&scrape, "cloacina_tasks_completed_total", Some(("workflow", "ok_flow"))).unwrap() >= 2.0, "{text}");
    assert!(value(&scrape, "cloacina_tasks_failed_total", Some(("workflow", "bad_flow"))).unwrap() >= 1.0);
    assert!(value(&scrape, "cloacina_tasks_started_total", Some(("workflow", "slow_flow"))).unwrap() >= 1.0);
    assert!(text.contains("cloacina_task_duration_seconds"), "{text}");
    assert!(text.contains("cloacina_claim_batch_size") && text.contains("cloacina_completions_per_commit"));
    // The gauges read from this database.
    assert_eq!(value(&scrape, "cloacina_database_up", None), Some(1.0));
    assert_eq!(value(&scrape, "cloacina_runs", Some(("status", "Completed"))), Some(1.0));
    assert_eq!(value(&scrape, "cloacina_runs", Some(("status", "Failed"))), Some(1.0));
    assert_eq!(value(&scrape, "cloacina_runs", Some(("status", "Cancelled"))), Some(0.0));
    assert_eq!(value(&scrape, "cloacina_runs", Some(("status", "Running"))), Some(1.0), "slow_flow waits");
    assert_eq!(value(&scrape, "cloacina_runners_holding_leases", None), Some(1.0));
    assert_eq!(value(&scrape, "cloacina_live_workflow_versions", None), Some(3.0));
    open.send_replace(true);
    runner.shutdown().await.unwrap();
}

#[test]
fn metrics_sqlite() {
    block_on(scrape_after_runs(TestDb::sqlite()));
}

#[test]
fn metrics_postgres() {
    block_on(scrape_after_runs(TestDb::postgres()));
}
