//! Which runners are up and which workflow versions they have, read from the `runners` table: a
//! runner registers there with its versions when it starts, refreshes its row every
//! [`REFRESH_INTERVAL`](crate::dal::workflow_registry::REFRESH_INTERVAL) and removes it when it
//! stops gracefully. The one rule for every question about liveness: whether a run waits for a
//! runner with its version, whether a version is live, whether `db copy` may take a database,
//! and whether a runner of another host uses a SQLite file.

use chrono::{DateTime, Utc};

use crate::dal::{runners, task_executions as tasks, workflow_registry, write_transaction};
use crate::database::{AnyConnection, BackendFeature, Result, UniversalTimestamp};
use crate::engine::Host;
use crate::models::{PipelineExecution, RegisteredWorkflow, RunnerProcess};

pub use crate::dal::runners::Versions;

/// A runner is up while it said so within this window (it says so every 15 s; a killed runner's
/// row goes stale after it).
pub const LIVE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The runners seen within [`LIVE_WINDOW`] before `now`, most recently seen first.
pub fn live_runners(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Vec<RunnerProcess>> {
    runners::seen_since(conn, UniversalTimestamp::from(now).minus(LIVE_WINDOW))
}

/// Records runner `name` of this process on `host` with the workflow `versions` it has. On a
/// backend that cannot be shared across hosts (SQLite), first refuses to start when a runner of
/// another host is live; the check and the record are one transaction, so two hosts starting at
/// once cannot both pass.
pub(crate) fn register_runner(
    conn: &mut AnyConnection,
    name: &str,
    host: &Host,
    versions: &runners::Versions,
    now: UniversalTimestamp,
) -> std::result::Result<(), crate::Error> {
    write_transaction(conn, |conn| {
        if !conn.backend().supports(BackendFeature::MultiHost) {
            if let Some(other) = live_runners(conn, now.as_datetime())?.into_iter().find(|r| r.host_id != host.id) {
                return Err(crate::Error::AnotherHost {
                    seen_secs: (now.as_datetime() - other.last_seen_at).num_seconds().max(0),
                    runner: other.runner_name,
                    host: other.host_name,
                });
            }
        }
        let runner =
            runners::NewRunner { name, host_id: &host.id, host_name: &host.name, pid: std::process::id(), versions };
        runners::register(conn, runner, now)?;
        Ok(())
    })
}

/// Records the versions runner `name` has now (a package loaded, replaced or removed), registering
/// it again if its row is gone.
pub(crate) fn set_versions(
    conn: &mut AnyConnection,
    name: &str,
    versions: &runners::Versions,
    now: UniversalTimestamp,
) -> std::result::Result<(), crate::Error> {
    if !runners::set_versions(conn, name, versions, now)? {
        register_runner(conn, name, &Host::this(), versions, now)?;
    }
    Ok(())
}

/// Removes runner `name`'s row: it stopped gracefully, and its versions stop being live at once.
pub(crate) fn deregister(conn: &mut AnyConnection, name: &str) -> Result<()> {
    runners::remove(conn, name)
}

/// Why a database is in use, if it is: a live runner, or else a task lease that has not run out
/// (a runner that stopped without a word may still be running that task).
pub fn in_use(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Option<String>> {
    if let Some(r) = live_runners(conn, now)?.into_iter().next() {
        let ago = (now - r.last_seen_at).num_seconds().max(0);
        return Ok(Some(format!("runner {} on {} said it was alive {ago} s ago", r.runner_name, r.host_name)));
    }
    let holders = tasks::runners_holding_leases(conn, now.into())?;
    Ok(holders.first().map(|r| format!("runner {r} holds a task lease that has not run out")))
}

/// Why an unfinished run is not making progress: no live runner has its workflow version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WaitingForVersion {
    /// The workflow.
    pub workflow_name: String,
    /// The version the run started with.
    pub version: String,
    /// When a runner last had that version (`None` if no runner ever registered it).
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl std::fmt::Display for WaitingForVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waiting for a runner with version {} of workflow `{}`", self.version, self.workflow_name)?;
        match self.last_seen_at {
            Some(t) => write!(f, " (last seen {})", t.format("%Y-%m-%d %H:%M:%S UTC")),
            None => write!(f, " (never registered)"),
        }
    }
}

/// The live runners and the registry, read once; answers many runs from them.
#[derive(Debug, Clone)]
pub struct Liveness {
    runners: Vec<RunnerProcess>,
    entries: Vec<RegisteredWorkflow>,
}

impl Liveness {
    /// Reads the live runners and the registry as of `now`.
    pub fn read(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Self> {
        Ok(Self { runners: live_runners(conn, now)?, entries: workflow_registry::list(conn)? })
    }

    /// True when a live runner has `version` (a version is a hash over the workflow's name and
    /// structure, so it names one workflow): it runs that version's tasks, whether or not it still
    /// starts new runs of it.
    pub fn is_live(&self, version: &str) -> bool {
        self.runners.iter().any(|r| r.workflow_versions.iter().chain(&r.retired_versions).any(|v| v == version))
    }

    /// True when a live runner starts new runs at `version` (it has it and its package was not
    /// replaced or removed there).
    pub fn offers(&self, version: &str) -> bool {
        self.runners.iter().any(|r| r.workflow_versions.iter().any(|v| v == version))
    }

    /// True when a live runner still runs `version` for the runs in flight but starts no new
    /// runs of it.
    pub fn is_retired(&self, version: &str) -> bool {
        !self.offers(version) && self.is_live(version)
    }

    /// The runners that are up.
    pub fn runners(&self) -> &[RunnerProcess] {
        &self.runners
    }

    /// The registry's entries, as read.
    pub fn registry(&self) -> &[RegisteredWorkflow] {
        &self.entries
    }

    /// The registry entry of `run`'s workflow version.
    pub(crate) fn entry(&self, run: &PipelineExecution) -> Option<&RegisteredWorkflow> {
        self.entries.iter().find(|e| e.workflow_name == run.workflow_name && e.version == run.workflow_version)
    }

    /// `Some` when `run` is unfinished and no live runner has its version.
    pub fn waiting(&self, run: &PipelineExecution) -> Option<WaitingForVersion> {
        if run.status.is_terminal() || self.is_live(&run.workflow_version) {
            return None;
        }
        Some(WaitingForVersion {
            workflow_name: run.workflow_name.clone(),
            version: run.workflow_version.clone(),
            last_seen_at: self.entry(run).map(|e| e.last_seen_at),
        })
    }
}
