//! `trigger_schedules`: event triggers, one row per trigger name, written by the runners that
//! have the trigger. `last_poll_tick` is the compare-and-set that lets one runner poll per slot.

use std::time::Duration;

use diesel::prelude::*;

use super::serialize_writes;
use crate::database::schema::trigger_schedules as ts;
use crate::database::{AnyConnection, Result, UniversalBool, UniversalTimestamp};
use crate::models::TriggerSchedule;

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = ts)]
struct ScheduleRow {
    trigger_name: String,
    workflow_name: String,
    poll_interval_ms: i64,
    allow_concurrent: UniversalBool,
    enabled: UniversalBool,
    last_poll_tick: i64,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

impl From<ScheduleRow> for TriggerSchedule {
    fn from(r: ScheduleRow) -> Self {
        TriggerSchedule {
            trigger_name: r.trigger_name,
            workflow_name: r.workflow_name,
            poll_interval: Duration::from_millis(u64::try_from(r.poll_interval_ms).unwrap_or(0)),
            allow_concurrent: r.allow_concurrent.0,
            enabled: r.enabled.0,
            last_poll_tick: r.last_poll_tick,
            created_at: r.created_at.as_datetime(),
            updated_at: r.updated_at.as_datetime(),
        }
    }
}

/// Milliseconds of `d`, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Records a trigger's definition: inserts it (enabled) on first sight, otherwise updates its
/// workflow, interval and concurrency, keeping `enabled` and `last_poll_tick`. Safe when several
/// runners register at once: a losing insert (unique violation) becomes an update.
pub fn register(
    conn: &mut AnyConnection,
    name: &str,
    workflow: &str,
    poll_interval: Duration,
    allow_concurrent: bool,
    now: UniversalTimestamp,
) -> Result<()> {
    use diesel::result::{DatabaseErrorKind, Error as E};
    let interval = millis(poll_interval);
    let update = |conn: &mut AnyConnection| {
        diesel::update(ts::table.find(name))
            .set((
                ts::workflow_name.eq(workflow),
                ts::poll_interval_ms.eq(interval),
                ts::allow_concurrent.eq(UniversalBool(allow_concurrent)),
                ts::updated_at.eq(now),
            ))
            .execute(conn)
    };
    let row = ScheduleRow {
        trigger_name: name.to_owned(),
        workflow_name: workflow.to_owned(),
        poll_interval_ms: interval,
        allow_concurrent: UniversalBool(allow_concurrent),
        enabled: UniversalBool(true),
        last_poll_tick: 0,
        created_at: now,
        updated_at: now,
    };
    serialize_writes(conn, |conn| {
        if update(conn)? > 0 {
            return Ok(());
        }
        match diesel::insert_into(ts::table).values(&row).execute(conn) {
            Err(E::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => update(conn).map(|_| ()),
            other => other.map(|_| ()),
        }
    })?;
    Ok(())
}

/// Claims poll slot `tick` of trigger `name` for the caller: true for exactly one caller per
/// slot across all runners (compare-and-set on `last_poll_tick`), false when another runner has
/// it, a later slot was claimed, or the trigger is disabled.
pub fn claim_tick(conn: &mut AnyConnection, name: &str, tick: i64, now: UniversalTimestamp) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(
            ts::table
                .filter(ts::trigger_name.eq(name))
                .filter(ts::enabled.eq(UniversalBool(true)))
                .filter(ts::last_poll_tick.lt(tick)),
        )
        .set((ts::last_poll_tick.eq(tick), ts::updated_at.eq(now)))
        .execute(conn)
    })?;
    Ok(n == 1)
}

/// Inside the caller's write transaction: locks trigger `name`'s row, so fires of one trigger
/// commit one after another. False when it is disabled or gone.
pub fn lock_enabled(conn: &mut AnyConnection, name: &str, now: UniversalTimestamp) -> Result<bool> {
    let n = diesel::update(ts::table.filter(ts::trigger_name.eq(name)).filter(ts::enabled.eq(UniversalBool(true))))
        .set(ts::updated_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// Pauses (`false`) or resumes (`true`) a trigger; false when there is no such trigger.
pub fn set_enabled(conn: &mut AnyConnection, name: &str, enabled: bool, now: UniversalTimestamp) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(ts::table.find(name))
            .set((ts::enabled.eq(UniversalBool(enabled)), ts::updated_at.eq(now)))
            .execute(conn)
    })?;
    Ok(n == 1)
}

/// The trigger called `name`, if any.
pub fn get(conn: &mut AnyConnection, name: &str) -> Result<Option<TriggerSchedule>> {
    let row = ts::table.find(name).select(ScheduleRow::as_select()).first(conn).optional()?;
    Ok(row.map(TriggerSchedule::from))
}

/// Triggers by name; only enabled ones with `enabled_only`; a page of `limit` from `offset`.
pub fn list(conn: &mut AnyConnection, enabled_only: bool, limit: i64, offset: i64) -> Result<Vec<TriggerSchedule>> {
    let mut query = ts::table.order(ts::trigger_name.asc()).select(ScheduleRow::as_select()).into_boxed();
    if enabled_only {
        query = query.filter(ts::enabled.eq(UniversalBool(true)));
    }
    let rows: Vec<ScheduleRow> = query.limit(limit).offset(offset).load(conn)?;
    Ok(rows.into_iter().map(TriggerSchedule::from).collect())
}
