//! `runners`: the runner processes that are running, with the host each runs on and the workflow
//! versions each has. A runner registers when it starts, refreshes `last_seen_at` with its
//! registry entries, and removes its row when it stops gracefully; a killed runner's row goes
//! stale.

use diesel::prelude::*;

use super::serialize_writes;
use crate::database::schema::runners as r;
use crate::database::{AnyConnection, Result, UniversalJson, UniversalTimestamp};
use crate::models::RunnerProcess;

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = r)]
struct RunnerRow {
    runner_name: String,
    host_id: String,
    host_name: String,
    pid: i64,
    last_seen_at: UniversalTimestamp,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
    workflow_versions: UniversalJson,
    retired_versions: UniversalJson,
}

impl From<RunnerRow> for RunnerProcess {
    fn from(row: RunnerRow) -> Self {
        RunnerProcess {
            runner_name: row.runner_name,
            host_id: row.host_id,
            host_name: row.host_name,
            pid: u32::try_from(row.pid).unwrap_or(0),
            started_at: row.created_at.as_datetime(),
            last_seen_at: row.last_seen_at.as_datetime(),
            workflow_versions: serde_json::from_value(row.workflow_versions.0).unwrap_or_default(),
            retired_versions: serde_json::from_value(row.retired_versions.0).unwrap_or_default(),
        }
    }
}

/// What a runner says about itself when it registers.
#[derive(Debug, Clone, Copy)]
pub struct NewRunner<'a> {
    /// Its name (the `claimed_by` of its tasks).
    pub name: &'a str,
    /// The machine's boot id (or host name).
    pub host_id: &'a str,
    /// The host name, for people.
    pub host_name: &'a str,
    /// Its process id.
    pub pid: u32,
    /// The versions it has: it runs their tasks and starts new runs at them.
    pub versions: &'a Versions,
}

/// The workflow versions a runner has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// Versions it runs and starts new runs at (cron, triggers, `runs start`).
    pub offered: Vec<String>,
    /// Versions it still runs for the runs in flight but starts no new runs of (their package was
    /// replaced or removed).
    pub retired: Vec<String>,
}

/// Records `runner`, replacing an earlier row of the same name (a runner restarted under a fixed
/// name).
pub fn register(conn: &mut AnyConnection, runner: NewRunner<'_>, now: UniversalTimestamp) -> Result<()> {
    let NewRunner { name, host_id, host_name, pid, versions } = runner;
    super::write_transaction(conn, |conn| {
        diesel::delete(r::table.find(name)).execute(conn)?;
        diesel::insert_into(r::table)
            .values(RunnerRow {
                runner_name: name.to_owned(),
                host_id: host_id.to_owned(),
                host_name: host_name.to_owned(),
                pid: i64::from(pid),
                last_seen_at: now,
                created_at: now,
                updated_at: now,
                workflow_versions: UniversalJson(serde_json::json!(versions.offered)),
                retired_versions: UniversalJson(serde_json::json!(versions.retired)),
            })
            .execute(conn)?;
        Ok(())
    })
}

/// Moves `last_seen_at` of runner `name` to `now`; false when it has no row (removed meanwhile).
pub fn touch(conn: &mut AnyConnection, name: &str, now: UniversalTimestamp) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(r::table.find(name)).set((r::last_seen_at.eq(now), r::updated_at.eq(now))).execute(conn)
    })?;
    Ok(n == 1)
}

/// Replaces the versions runner `name` has (a package loaded, replaced or removed); false when it
/// has no row.
pub fn set_versions(
    conn: &mut AnyConnection,
    name: &str,
    versions: &Versions,
    now: UniversalTimestamp,
) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(r::table.find(name))
            .set((
                r::workflow_versions.eq(UniversalJson(serde_json::json!(versions.offered))),
                r::retired_versions.eq(UniversalJson(serde_json::json!(versions.retired))),
                r::last_seen_at.eq(now),
                r::updated_at.eq(now),
            ))
            .execute(conn)
    })?;
    Ok(n == 1)
}

/// Removes runner `name`'s row (a graceful stop).
pub fn remove(conn: &mut AnyConnection, name: &str) -> Result<()> {
    serialize_writes(conn, |conn| diesel::delete(r::table.find(name)).execute(conn))?;
    Ok(())
}

/// The runners seen at or after `since`, most recently seen first.
pub fn seen_since(conn: &mut AnyConnection, since: UniversalTimestamp) -> Result<Vec<RunnerProcess>> {
    let rows: Vec<RunnerRow> = r::table
        .filter(r::last_seen_at.ge(since))
        .order(r::last_seen_at.desc())
        .select(RunnerRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(RunnerProcess::from).collect())
}
