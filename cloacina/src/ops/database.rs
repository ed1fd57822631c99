//! The database as operators see it: apply the pending migrations, where a database stands
//! (backend, migrations, rows per table), and the gauges `/metrics` reads from it.

use chrono::{DateTime, Utc};

use super::liveness::Liveness;
use crate::dal::{pipeline_executions as pipelines, task_executions as tasks};
use crate::database::migrate::{self, Applied};
use crate::database::{AnyConnection, Backend, UniversalTimestamp};
use crate::models::PipelineStatus;
use crate::Error;

pub use crate::dal::task_executions::ReadyQueue;

/// Applies every pending migration (`schema`: a PostgreSQL schema to create first), one after
/// the other; each with its duration.
pub fn migrate(conn: &mut AnyConnection, schema: Option<&str>) -> Result<Vec<Applied>, Error> {
    Ok(migrate::run_pending(conn, schema)?)
}

/// The migration versions this build ships for `backend`, oldest first (the last is the schema
/// version it migrates to).
pub fn known_versions(backend: Backend) -> Result<Vec<String>, Error> {
    Ok(migrate::known_versions(backend)?)
}

/// Where a database stands.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// Its backend.
    pub backend: Backend,
    /// Migrations applied, oldest first.
    pub applied: Vec<String>,
    /// Migrations this version ships that are not applied, oldest first.
    pub pending: Vec<String>,
    /// Rows per table, once every migration is applied.
    pub rows: Option<Vec<(&'static str, i64)>>,
}

/// The database's backend, migrations and (when fully migrated) rows per table. Never writes.
pub fn status(conn: &mut AnyConnection, with_rows: bool) -> Result<Status, Error> {
    let m = migrate::status(conn)?;
    let rows = (with_rows && m.pending.is_empty()).then(|| crate::dal::row_counts(conn)).transpose()?;
    Ok(Status { backend: m.backend, applied: m.applied, pending: m.pending, rows })
}

/// What `/metrics` shows of the database, read in one visit.
#[derive(Debug, Clone)]
pub struct Gauges {
    /// Ready tasks due now, per workflow, with the oldest's wait.
    pub ready: Vec<ReadyQueue>,
    /// Runs per status (statuses without runs absent).
    pub runs: Vec<(PipelineStatus, i64)>,
    /// Runners holding at least one unexpired lease.
    pub runners_holding_leases: usize,
    /// Registered workflow versions a live runner has.
    pub live_versions: usize,
}

/// The gauges as of `now`.
pub fn gauges(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Gauges, Error> {
    let at = UniversalTimestamp::from(now);
    let live = Liveness::read(conn, now)?;
    Ok(Gauges {
        ready: tasks::ready_queues(conn, at)?,
        runs: pipelines::count_by_status(conn)?,
        runners_holding_leases: tasks::runners_holding_leases(conn, at)?.len(),
        live_versions: live.registry().iter().filter(|e| live.is_live(&e.version)).count(),
    })
}
