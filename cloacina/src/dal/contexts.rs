//! `contexts`: JSON context documents (pipeline inputs, task outputs, final results).

use diesel::prelude::*;
use serde_json::Value;

use super::serialize_writes;
use crate::database::schema::contexts;
use crate::database::{AnyConnection, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::ContextId;

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = contexts)]
struct ContextRow {
    id: UniversalUuid,
    value: UniversalJson,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

/// Stores a context document and returns its id.
pub fn insert(conn: &mut AnyConnection, value: &Value, now: UniversalTimestamp) -> Result<ContextId> {
    let id = ContextId::new();
    let row = ContextRow { id: id.into(), value: UniversalJson(value.clone()), created_at: now, updated_at: now };
    serialize_writes(conn, |conn| diesel::insert_into(contexts::table).values(&row).execute(conn))?;
    Ok(id)
}

/// The document stored under `id`, if any.
pub fn get(conn: &mut AnyConnection, id: ContextId) -> Result<Option<Value>> {
    let value = contexts::table
        .find(UniversalUuid::from(id))
        .select(contexts::value)
        .first::<UniversalJson>(conn)
        .optional()?;
    Ok(value.map(|v| v.0))
}

/// Deletes the documents with these ids (a prune removes a finished run's documents with it).
pub fn delete(conn: &mut AnyConnection, ids: &[UniversalUuid]) -> Result<usize> {
    Ok(serialize_writes(conn, |conn| diesel::delete(contexts::table.filter(contexts::id.eq_any(ids))).execute(conn))?)
}
