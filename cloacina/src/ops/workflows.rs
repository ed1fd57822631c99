//! The workflow registry as surfaces show it: every registered version with whether a live
//! runner has it, grouped by workflow; and the version a new run starts at.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::liveness::Liveness;
use super::outcome::{Outcome, Refused};
use crate::dal::workflow_registry;
use crate::database::AnyConnection;
use crate::models::{PackageStatus, RegisteredWorkflow};
use crate::workflow::{TaskSpec, Workflow, WorkflowSpec};
use crate::Error;

/// One workflow and the versions runners registered.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowVersions {
    /// The workflow's name.
    pub name: String,
    /// Its versions, the first registered first.
    pub versions: Vec<WorkflowVersion>,
}

/// One registered version of a workflow.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowVersion {
    /// Structural version (content hash).
    pub version: String,
    /// When a runner first registered it.
    pub first_seen_at: DateTime<Utc>,
    /// When a runner with it last said it was alive.
    pub last_seen_at: DateTime<Utc>,
    /// A live runner has it.
    pub live: bool,
    /// The task graph.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub graph: Value,
}

impl WorkflowVersion {
    /// How many tasks the graph has.
    pub fn task_count(&self) -> usize {
        self.graph.get("tasks").and_then(Value::as_array).map_or(0, Vec::len)
    }
}

/// Every registered workflow with its versions, by name.
pub fn list(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Vec<WorkflowVersions>, Error> {
    let live = Liveness::read(conn, now)?;
    let mut by_name: BTreeMap<String, Vec<WorkflowVersion>> = BTreeMap::new();
    for e in live.registry() {
        by_name.entry(e.workflow_name.clone()).or_default().push(WorkflowVersion {
            version: e.version.clone(),
            first_seen_at: e.first_seen_at,
            last_seen_at: e.last_seen_at,
            live: live.is_live(&e.version),
            graph: e.graph.clone(),
        });
    }
    for versions in by_name.values_mut() {
        versions.sort_by_key(|v| v.first_seen_at);
    }
    Ok(by_name.into_iter().map(|(name, versions)| WorkflowVersions { name, versions }).collect())
}

/// Records that a runner has `workflow` (its version, and the graph the first time a version is
/// seen): the registry a run's details and the code-less `definition` read.
pub fn record(conn: &mut AnyConnection, workflow: &Workflow, now: DateTime<Utc>) -> Result<(), Error> {
    let version = [workflow.version().to_owned()];
    // A version already recorded only has its last sighting moved: its graph (large for a large
    // workflow) is built and written only the first time.
    if workflow_registry::touch(conn, &version, now.into())? == 0 {
        let graph = crate::database::JsonText(workflow.spec().graph_text());
        workflow_registry::record_seen(conn, workflow.name(), workflow.version(), &graph, now.into())?;
    }
    Ok(())
}

/// The version a new run of `workflow` starts at: the newest version a live runner offers, else
/// the newest version ever registered (a runner that has it will pick the run up when it starts).
/// Refused when no runner registered the workflow, and when its newest version was withdrawn: a
/// live runner keeps it only for the runs in flight, or its package was removed or failed to load.
pub fn live_version(conn: &mut AnyConnection, workflow: &str, now: DateTime<Utc>) -> Outcome<Workflow> {
    let live = Liveness::read(conn, now)?;
    let entries: Vec<&RegisteredWorkflow> = live.registry().iter().filter(|e| e.workflow_name == workflow).collect();
    if let Some(offered) = entries.iter().filter(|e| live.offers(&e.version)).max_by_key(|e| e.last_seen_at) {
        return Ok(Ok(definition((*offered).clone())?));
    }
    let Some(newest) = entries.into_iter().max_by_key(|e| e.last_seen_at) else {
        return Ok(Err(Refused::NoWorkflow(workflow.to_owned())));
    };
    let withdrawn = |reason: String| Ok(Err(Refused::Withdrawn { workflow: workflow.to_owned(), reason }));
    if live.is_retired(&newest.version) {
        return withdrawn("its package was replaced or removed on every runner that has it".to_owned());
    }
    if let Some(source) = newest.graph.get("source").and_then(Value::as_str) {
        let packages = crate::dal::workflow_packages::by_sha(conn, source)?;
        if let Some(p) = packages.iter().find(|p| p.status != PackageStatus::Loaded) {
            if !packages.iter().any(|p| p.status == PackageStatus::Loaded) {
                return withdrawn(format!("its package {} {} is {}", p.package_name, p.version, p.status));
            }
        }
    }
    Ok(Ok(definition(newest.clone())?))
}

/// Those of `versions` that an unfinished run (Pending, Running or Paused) started with.
pub fn versions_in_use(conn: &mut AnyConnection, versions: &[String]) -> Result<Vec<String>, Error> {
    Ok(crate::dal::pipeline_executions::versions_in_use(conn, versions)?)
}

/// The code-less workflow of a registry entry; its version must come out as recorded.
pub(super) fn definition(entry: RegisteredWorkflow) -> Result<Workflow, Error> {
    let corrupt =
        |detail: String| Error::Database(crate::database::Error::Corrupt { table: "workflow_registry", detail });
    let tasks: Vec<TaskSpec> = serde_json::from_value(entry.graph.get("tasks").cloned().unwrap_or(Value::Null))
        .map_err(|e| corrupt(format!("graph of {} {}: {e}", entry.workflow_name, entry.version)))?;
    let source = entry.graph.get("source").and_then(Value::as_str).map(str::to_owned);
    let spec = WorkflowSpec::new(entry.workflow_name.clone(), None, tasks)?.with_source(source);
    if spec.version() != entry.version {
        return Err(corrupt(format!(
            "graph of {} hashes to {}, recorded as {}",
            entry.workflow_name,
            spec.version(),
            entry.version
        )));
    }
    Ok(Workflow::definition_only(spec))
}
