//! Row locks in the engine's lock order: pipeline rows first (ascending ids), then task rows.
//! Its own module so that both table modules that take them stay free of each other.

use crate::database::{dispatch, AnyConnection, Result, UniversalUuid};
use crate::models::PipelineExecutionId;

/// Locks the listed pipelines' rows, in ascending id order, for the rest of the caller's
/// transaction.
///
/// Every transaction that decides what follows a task outcome takes these locks first (the
/// engine's lock order is pipeline rows, then task rows), so two runners recording outcomes of one
/// pipeline take turns: the later one sees what the earlier one wrote, and a dependent waiting on
/// both is decided by exactly one of them. PostgreSQL: `SELECT … FOR NO KEY UPDATE` (it does not
/// block inserts that reference the row). SQLite: a no-op, because the caller's `BEGIN IMMEDIATE`
/// already excludes every other writer.
pub fn pipelines(conn: &mut AnyConnection, ids: &[PipelineExecutionId]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sorted: Vec<UniversalUuid> = ids.iter().map(|&id| id.into()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    Ok(dispatch!(conn, lock_pipelines(&sorted))?)
}
