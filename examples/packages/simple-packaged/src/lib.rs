//! A packaged workflow: collect, process, report. Packed into a `.cloacina` archive and loaded by
//! `cloacinactl daemon`, it runs without being compiled into the daemon.
//!
//! Two inputs exist for the test suite: `delay_ms` makes `collect_data` take that long (a run
//! in flight while the package is replaced or the daemon killed), `panic` makes it panic (an
//! attempt that fails while the daemon lives on).

use cloacina_workflow::{task, workflow, Context, TaskError};

cloacina_workflow_plugin::package!();

/// The release of this code: its runs report it, so a test tells two versions apart.
const RELEASE: &str = "one";

/// Collect, process and report.
#[workflow(
    name = "data_processing",
    description = "Collect, process and report",
    author = "Cloacina"
)]
pub mod data_processing {
    use super::*;

    /// Collects the input records (waits `delay_ms` first, on the package's own runtime).
    #[task(retry_attempts = 2)]
    pub async fn collect_data(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        if context.get("panic").and_then(|p| p.as_bool()) == Some(true) {
            panic!("collect_data was told to panic");
        }
        let delay = context.get("delay_ms").and_then(|d| d.as_u64()).unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        // Spawned work and timers run too: the package has a runtime of its own.
        let records = tokio::spawn(async { 1000_u64 }).await.map_err(|e| TaskError::retryable(e.to_string()))?;
        context.insert("raw_data", serde_json::json!({ "records": records, "release": RELEASE }))?;
        Ok(())
    }

    /// Keeps the valid records.
    #[task(dependencies = ["collect_data"], retry_attempts = 3)]
    pub async fn process_data(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let records = context
            .get("raw_data")
            .and_then(|r| r.get("records"))
            .and_then(|r| r.as_u64())
            .ok_or_else(|| TaskError::ValidationFailed { message: "raw_data.records is missing".into() })?;
        context.insert("processed_data", serde_json::json!({ "processed_records": records * 95 / 100 }))?;
        Ok(())
    }

    /// Reports what was processed, and by which release.
    #[task(dependencies = ["process_data"])]
    pub async fn generate_report(context: &mut Context<serde_json::Value>) -> Result<(), TaskError> {
        let processed = context.get("processed_data").cloned().unwrap_or_default();
        context.insert("final_report", serde_json::json!({ "summary": processed, "release": RELEASE }))?;
        Ok(())
    }
}
