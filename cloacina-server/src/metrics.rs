//! `GET /metrics`: Prometheus text. First whatever the application's recorder renders (the
//! engine's metrics, when the process runs runners and passed `ServerConfig::render_metrics`),
//! then gauges read from the database, so a standalone server reports on every runner:
//!
//! - `cloacina_database_up` (1, or 0 when the database did not answer; the gauges below are then
//!   left out),
//! - `cloacina_ready_tasks{workflow}` and `cloacina_oldest_ready_age_seconds{workflow}`,
//! - `cloacina_runs{status}` (every status, 0 included),
//! - `cloacina_runners_holding_leases`, `cloacina_live_workflow_versions`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use cloacina::models::PipelineStatus;
use cloacina::ops::database::{gauges, Gauges};

use crate::AppState;

/// Prometheus text: the process's own metrics, then gauges read from the database.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = OK, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String),
))]
pub(crate) async fn scrape(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    let mut out = s.config.render_metrics.as_ref().map(|render| render()).unwrap_or_default();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let now = s.config.clock.now();
    let read: Result<Gauges, _> = s.db.run_with(move |c| gauges(c, now)).await;
    gauge(&mut out, "cloacina_database_up", "1 when the database answered this scrape.");
    match read {
        Ok(g) => {
            out.push_str("cloacina_database_up 1\n");
            gauge(&mut out, "cloacina_ready_tasks", "Ready tasks due now, per workflow.");
            for q in &g.ready {
                let _ = writeln!(out, "cloacina_ready_tasks{{workflow=\"{}\"}} {}", label(&q.workflow_name), q.tasks);
            }
            gauge(&mut out, "cloacina_oldest_ready_age_seconds", "How long the longest-waiting Ready task has waited.");
            for q in &g.ready {
                let age = q.oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
                let _ = writeln!(
                    out,
                    "cloacina_oldest_ready_age_seconds{{workflow=\"{}\"}} {age}",
                    label(&q.workflow_name)
                );
            }
            gauge(&mut out, "cloacina_runs", "Runs per status.");
            for status in PipelineStatus::ALL {
                let n = g.runs.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                let _ = writeln!(out, "cloacina_runs{{status=\"{status}\"}} {n}");
            }
            gauge(&mut out, "cloacina_runners_holding_leases", "Runners holding at least one unexpired lease.");
            let _ = writeln!(out, "cloacina_runners_holding_leases {}", g.runners_holding_leases);
            gauge(&mut out, "cloacina_live_workflow_versions", "Workflow versions a live runner has.");
            let _ = writeln!(out, "cloacina_live_workflow_versions {}", g.live_versions);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            out.push_str("cloacina_database_up 0\n");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value with `\`, `"` and line breaks escaped, as the text format requires.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
