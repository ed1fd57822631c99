//! The engine's metrics, recorded through the `metrics` facade: nothing is recorded until the
//! application installs a recorder (`metrics-exporter-prometheus`, say), and then every runner
//! in the process reports through it. The names are the contract, listed here once:
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `cloacina_tasks_started_total` | counter | `workflow` | attempts started (claimed tasks) |
//! | `cloacina_tasks_completed_total` | counter | `workflow` | attempts that succeeded |
//! | `cloacina_tasks_failed_total` | counter | `workflow` | attempts that failed for good |
//! | `cloacina_tasks_retried_total` | counter | `workflow` | attempts that failed and were rescheduled |
//! | `cloacina_task_duration_seconds` | histogram | `workflow` | an attempt's run time |
//! | `cloacina_claim_batch_size` | histogram | | tasks taken per claim statement |
//! | `cloacina_claim_latency_seconds` | histogram | | time of a claim statement |
//! | `cloacina_completions_per_commit` | histogram | | outcomes recorded per group commit |
//! | `cloacina_lease_recoveries_total` | counter | | tasks handed on after their lease expired |
//! | `cloacina_cron_fires_total` | counter | | cron fire times started |
//! | `cloacina_cron_missed_total` | counter | | missed fire times the catch-up policy dropped |
//! | `cloacina_trigger_fires_total` | counter | | runs started by event triggers |
//! | `cloacina_database_errors_total` | counter | `kind` | failed engine database steps (retried or not) |

#[cfg(feature = "otel")]
pub mod otlp;

use std::time::Duration;

/// Attempt metrics, labelled by workflow.
pub(crate) fn task_started(workflow: &str) {
    metrics::counter!("cloacina_tasks_started_total", "workflow" => workflow.to_owned()).increment(1);
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AttemptEnd {
    Completed,
    Failed,
    Retried,
}

pub(crate) fn task_ended(workflow: &str, end: AttemptEnd, took: Duration) {
    let name = match end {
        AttemptEnd::Completed => "cloacina_tasks_completed_total",
        AttemptEnd::Failed => "cloacina_tasks_failed_total",
        AttemptEnd::Retried => "cloacina_tasks_retried_total",
    };
    metrics::counter!(name, "workflow" => workflow.to_owned()).increment(1);
    metrics::histogram!("cloacina_task_duration_seconds", "workflow" => workflow.to_owned()).record(took.as_secs_f64());
}

pub(crate) fn claimed(tasks: usize, took: Duration) {
    metrics::histogram!("cloacina_claim_batch_size").record(tasks as f64);
    metrics::histogram!("cloacina_claim_latency_seconds").record(took.as_secs_f64());
}

pub(crate) fn committed(outcomes: usize) {
    metrics::histogram!("cloacina_completions_per_commit").record(outcomes as f64);
}

pub(crate) fn leases_recovered(tasks: usize) {
    metrics::counter!("cloacina_lease_recoveries_total").increment(tasks as u64);
}

pub(crate) fn cron_fired() {
    metrics::counter!("cloacina_cron_fires_total").increment(1);
}

pub(crate) fn cron_missed(times: usize) {
    metrics::counter!("cloacina_cron_missed_total").increment(times as u64);
}

pub(crate) fn trigger_fired() {
    metrics::counter!("cloacina_trigger_fires_total").increment(1);
}

pub(crate) fn database_error(kind: crate::ErrorKind) {
    let kind = match kind {
        crate::ErrorKind::Unavailable => "unavailable",
        crate::ErrorKind::InvalidInput => "invalid_input",
        crate::ErrorKind::Other => "other",
    };
    metrics::counter!("cloacina_database_errors_total", "kind" => kind).increment(1);
}
