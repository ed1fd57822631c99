//! `cron_schedules`: schedules that start pipelines at cron fire times.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::{corrupt, int, serialize_writes, time, uint};
use crate::database::schema::cron_schedules as cs;
use crate::database::{AnyConnection, Result, UniversalBool, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::{CatchupPolicy, CronSchedule, CronScheduleId};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = cs)]
struct ScheduleRow {
    id: UniversalUuid,
    workflow_name: String,
    cron_expression: String,
    timezone: String,
    context: UniversalJson,
    enabled: UniversalBool,
    catchup_policy: String,
    max_catchup: i32,
    start_at: Option<UniversalTimestamp>,
    end_at: Option<UniversalTimestamp>,
    next_run_at: Option<UniversalTimestamp>,
    last_run_at: Option<UniversalTimestamp>,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
    trigger_name: Option<String>,
}

impl TryFrom<ScheduleRow> for CronSchedule {
    type Error = crate::database::Error;

    fn try_from(r: ScheduleRow) -> Result<Self> {
        Ok(CronSchedule {
            id: r.id.into(),
            catchup_policy: r.catchup_policy.parse().map_err(|e| corrupt("cron_schedules", e))?,
            workflow_name: r.workflow_name,
            cron_expression: r.cron_expression,
            timezone: r.timezone,
            context: r.context.0,
            enabled: r.enabled.0,
            max_catchup: uint(r.max_catchup),
            start_at: time(r.start_at),
            end_at: time(r.end_at),
            next_run_at: time(r.next_run_at),
            last_run_at: time(r.last_run_at),
            created_at: r.created_at.as_datetime(),
            updated_at: r.updated_at.as_datetime(),
            trigger_name: r.trigger_name,
        })
    }
}

/// A schedule to create. The cron layer validates the expression and time zone and computes
/// `next_run_at` before calling [`insert`].
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// The workflow to start.
    pub workflow_name: String,
    /// The cron expression.
    pub cron_expression: String,
    /// IANA time zone.
    pub timezone: String,
    /// Input context of each pipeline.
    pub context: Value,
    /// False to create it paused.
    pub enabled: bool,
    /// What to do about missed fire times.
    pub catchup_policy: CatchupPolicy,
    /// Most missed fire times `RunAll` replays.
    pub max_catchup: u32,
    /// No fire time before this.
    pub start_at: Option<DateTime<Utc>>,
    /// No fire time after this.
    pub end_at: Option<DateTime<Utc>>,
    /// The first fire time.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The cron trigger that declared it in code (`#[trigger(cron = …)]`), if one did.
    pub trigger_name: Option<String>,
}

/// Stores a schedule.
pub fn insert(conn: &mut AnyConnection, new: &NewSchedule, now: UniversalTimestamp) -> Result<CronScheduleId> {
    let id = CronScheduleId::new();
    let row = ScheduleRow {
        id: id.into(),
        workflow_name: new.workflow_name.clone(),
        cron_expression: new.cron_expression.clone(),
        timezone: new.timezone.clone(),
        context: UniversalJson(new.context.clone()),
        enabled: UniversalBool(new.enabled),
        catchup_policy: new.catchup_policy.as_str().to_owned(),
        max_catchup: int(new.max_catchup),
        start_at: new.start_at.map(Into::into),
        end_at: new.end_at.map(Into::into),
        next_run_at: new.next_run_at.map(Into::into),
        last_run_at: None,
        created_at: now,
        updated_at: now,
        trigger_name: new.trigger_name.clone(),
    };
    serialize_writes(conn, |conn| diesel::insert_into(cs::table).values(&row).execute(conn))?;
    Ok(id)
}

/// Stores the schedule a cron trigger declared, unless one with its `trigger_name` exists
/// (another runner may create it at the same moment: the unique index picks one). Returns the id
/// of the schedule it created, `None` if it was there already.
pub fn insert_declared(
    conn: &mut AnyConnection,
    new: &NewSchedule,
    now: UniversalTimestamp,
) -> Result<Option<CronScheduleId>> {
    use diesel::result::{DatabaseErrorKind, Error as E};
    let Some(name) = new.trigger_name.as_deref() else { return Ok(Some(insert(conn, new, now)?)) };
    let exists = cs::table.filter(cs::trigger_name.eq(name)).select(cs::id).first::<UniversalUuid>(conn).optional()?;
    if exists.is_some() {
        return Ok(None);
    }
    match insert(conn, new, now) {
        Ok(id) => Ok(Some(id)),
        Err(crate::database::Error::Query(E::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The schedule with this id, if any.
pub fn get(conn: &mut AnyConnection, id: CronScheduleId) -> Result<Option<CronSchedule>> {
    cs::table
        .find(UniversalUuid::from(id))
        .select(ScheduleRow::as_select())
        .first(conn)
        .optional()?
        .map(CronSchedule::try_from)
        .transpose()
}

/// Every schedule, oldest first.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<CronSchedule>> {
    let rows: Vec<ScheduleRow> =
        cs::table.order((cs::created_at.asc(), cs::id.asc())).select(ScheduleRow::as_select()).load(conn)?;
    rows.into_iter().map(CronSchedule::try_from).collect()
}

/// Schedules oldest first, only enabled ones if `enabled_only`: `limit` after skipping `offset`.
pub fn page(conn: &mut AnyConnection, enabled_only: bool, limit: u32, offset: u32) -> Result<Vec<CronSchedule>> {
    let mut query = cs::table.order((cs::created_at.asc(), cs::id.asc())).into_boxed();
    if enabled_only {
        query = query.filter(cs::enabled.eq(UniversalBool(true)));
    }
    let rows: Vec<ScheduleRow> =
        query.limit(i64::from(limit)).offset(i64::from(offset)).select(ScheduleRow::as_select()).load(conn)?;
    rows.into_iter().map(CronSchedule::try_from).collect()
}

/// Enabled schedules of `workflows` whose next fire time is at or before `now`, earliest first.
pub fn due(
    conn: &mut AnyConnection,
    workflows: &[String],
    now: UniversalTimestamp,
    limit: u32,
) -> Result<Vec<CronSchedule>> {
    let rows: Vec<ScheduleRow> = cs::table
        .filter(cs::enabled.eq(UniversalBool(true)))
        .filter(cs::workflow_name.eq_any(workflows))
        .filter(cs::next_run_at.le(now))
        .order(cs::next_run_at.asc())
        .limit(i64::from(limit))
        .select(ScheduleRow::as_select())
        .load(conn)?;
    rows.into_iter().map(CronSchedule::try_from).collect()
}

/// The earliest next fire time of any enabled schedule of `workflows`: how long the cron service
/// may sleep.
pub fn next_due_time(conn: &mut AnyConnection, workflows: &[String]) -> Result<Option<DateTime<Utc>>> {
    let t: Option<UniversalTimestamp> = cs::table
        .filter(cs::enabled.eq(UniversalBool(true)))
        .filter(cs::workflow_name.eq_any(workflows))
        .select(diesel::dsl::min(cs::next_run_at))
        .first(conn)?;
    Ok(time(t))
}

/// Replaces every setting of schedule `id` with `new` (the cron layer has validated it and computed
/// its `next_run_at`); returns whether the schedule exists. Its fire-time history is kept.
pub fn replace(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    new: &NewSchedule,
    now: UniversalTimestamp,
) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(cs::table.find(UniversalUuid::from(id)))
            .set((
                cs::workflow_name.eq(&new.workflow_name),
                cs::cron_expression.eq(&new.cron_expression),
                cs::timezone.eq(&new.timezone),
                cs::context.eq(UniversalJson(new.context.clone())),
                cs::enabled.eq(UniversalBool(new.enabled)),
                cs::catchup_policy.eq(new.catchup_policy.as_str()),
                cs::max_catchup.eq(int(new.max_catchup)),
                cs::start_at.eq(new.start_at.map(UniversalTimestamp::from)),
                cs::end_at.eq(new.end_at.map(UniversalTimestamp::from)),
                cs::next_run_at.eq(new.next_run_at.map(UniversalTimestamp::from)),
                cs::updated_at.eq(now),
            ))
            .execute(conn)
    })?;
    Ok(n == 1)
}

/// Moves `next_run_at` from `expected` to `next` (and sets `last_run_at`, the latest fire time
/// run) if no other runner moved it first: a compare-and-set on the fire time. Returns whether
/// this call moved it.
#[must_use = "another runner may have advanced the schedule"]
pub fn advance(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    expected: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    last_run_at: Option<DateTime<Utc>>,
    now: UniversalTimestamp,
) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(
            cs::table.find(UniversalUuid::from(id)).filter(cs::next_run_at.eq(UniversalTimestamp::from(expected))),
        )
        .set((
            cs::next_run_at.eq(next.map(UniversalTimestamp::from)),
            cs::last_run_at.eq(last_run_at.map(UniversalTimestamp::from)),
            cs::updated_at.eq(now),
        ))
        .execute(conn)
    })?;
    Ok(n == 1)
}

/// Pauses (`false`) or resumes (`true`) a schedule, setting `next_run_at` as given (a resumed
/// schedule gets a fresh next fire time). Returns whether the schedule was in the other state.
#[must_use = "the schedule may already have been in that state"]
pub fn set_enabled(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    enabled: bool,
    next_run_at: Option<DateTime<Utc>>,
    now: UniversalTimestamp,
) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(cs::table.find(UniversalUuid::from(id)).filter(cs::enabled.eq(UniversalBool(!enabled))))
            .set((
                cs::enabled.eq(UniversalBool(enabled)),
                cs::next_run_at.eq(next_run_at.map(UniversalTimestamp::from)),
                cs::updated_at.eq(now),
            ))
            .execute(conn)
    })?;
    Ok(n == 1)
}

/// Deletes a schedule and its fire-time history; returns whether it existed.
pub fn delete(conn: &mut AnyConnection, id: CronScheduleId) -> Result<bool> {
    let n = serialize_writes(conn, |conn| diesel::delete(cs::table.find(UniversalUuid::from(id))).execute(conn))?;
    Ok(n == 1)
}
