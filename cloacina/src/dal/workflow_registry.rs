//! `workflow_registry`: the workflow definitions runners have seen, by name and structural version.

use diesel::prelude::*;

use super::serialize_writes;
use crate::database::on_inner;
use crate::database::schema::workflow_registry as wr;
use crate::database::{AnyConnection, JsonText, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::RegisteredWorkflow;

#[derive(Queryable, Selectable)]
#[diesel(table_name = wr)]
struct RegistryRow {
    id: UniversalUuid,
    workflow_name: String,
    version: String,
    graph: UniversalJson,
    first_seen_at: UniversalTimestamp,
    last_seen_at: UniversalTimestamp,
}

/// A new entry; its graph is written as the text it was given.
#[derive(Insertable)]
#[diesel(table_name = wr)]
struct NewRegistryRow<'a> {
    id: UniversalUuid,
    workflow_name: &'a str,
    version: &'a str,
    graph: &'a JsonText,
    first_seen_at: UniversalTimestamp,
    last_seen_at: UniversalTimestamp,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

impl From<RegistryRow> for RegisteredWorkflow {
    fn from(r: RegistryRow) -> Self {
        RegisteredWorkflow {
            id: r.id.into(),
            workflow_name: r.workflow_name,
            version: r.version,
            graph: r.graph.0,
            first_seen_at: r.first_seen_at.as_datetime(),
            last_seen_at: r.last_seen_at.as_datetime(),
        }
    }
}

/// How often a running runner refreshes `last_seen_at` of the workflows it has.
pub const REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Records that a runner knows `name` at `version`: inserts it on first sight, otherwise only
/// moves `last_seen_at`. Safe when several runners register at once (one upsert statement). The
/// entry is not read back: a large workflow's graph is written once and never parsed here.
pub fn record_seen(
    conn: &mut AnyConnection,
    name: &str,
    version: &str,
    graph: &JsonText,
    now: UniversalTimestamp,
) -> Result<()> {
    let row = NewRegistryRow {
        id: UniversalUuid::new_v7(),
        workflow_name: name,
        version,
        graph,
        first_seen_at: now,
        last_seen_at: now,
        created_at: now,
        updated_at: now,
    };
    // `ON CONFLICT` does not compile through `MultiBackend`; the same statement per backend.
    Ok(serialize_writes(conn, |conn| {
        on_inner!(conn, c => diesel::insert_into(wr::table)
        .values(&row)
        .on_conflict((wr::workflow_name, wr::version))
        .do_update()
        .set((wr::last_seen_at.eq(now), wr::updated_at.eq(now)))
        .execute(c))
    })
    .map(|_| ())?)
}

/// Moves `last_seen_at` of every listed version to `now`: a running runner's periodic "I still
/// have these". Versions are content hashes that include the workflow name, so they identify rows.
pub fn touch(conn: &mut AnyConnection, versions: &[String], now: UniversalTimestamp) -> Result<usize> {
    Ok(serialize_writes(conn, |conn| {
        diesel::update(wr::table.filter(wr::version.eq_any(versions)))
            .set((wr::last_seen_at.eq(now), wr::updated_at.eq(now)))
            .execute(conn)
    })?)
}

/// The registry entry for `name` at `version`, if any.
pub fn get(conn: &mut AnyConnection, name: &str, version: &str) -> Result<Option<RegisteredWorkflow>> {
    let row = wr::table
        .filter(wr::workflow_name.eq(name))
        .filter(wr::version.eq(version))
        .select(RegistryRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(RegisteredWorkflow::from))
}

/// Every registry entry, by name then first sighting.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<RegisteredWorkflow>> {
    let rows: Vec<RegistryRow> = wr::table
        .order((wr::workflow_name.asc(), wr::first_seen_at.asc()))
        .select(RegistryRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(RegisteredWorkflow::from).collect())
}
