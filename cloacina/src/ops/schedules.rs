//! Cron schedules as operators manage them: create one for a registered workflow, change, pause,
//! resume or delete it, list them, and read one with its next fire times and recent history. The
//! requests ([`CreateSchedule`], [`ChangeSchedule`]) are what every surface fills in, so their
//! rules (which fields, a context that is an object, the text limits) are written once.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::outcome::Outcome;
use super::workflows::live_version;
use crate::cron::ScheduleConfig;
use crate::dal::{cron_executions, cron_schedules};
use crate::database::AnyConnection;
use crate::models::{CatchupPolicy, CronExecution, CronSchedule, CronScheduleId};
use crate::Error;

/// A new schedule, as an operator asks for it.
#[derive(Debug, Clone, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// A registered workflow.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255, pattern = "^[^\\x00]*$"))]
    pub workflow: String,
    /// Cron expression: 5 fields, or 6 with seconds.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"))]
    pub expression: String,
    /// IANA time zone the expression is read in (default UTC).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$"))]
    pub timezone: Option<String>,
    /// Input context of every run it starts (a JSON object).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Value>,
    /// What to do about fire times missed while no runner was up.
    pub catchup: Option<CatchupPolicy>,
    /// Most missed fire times `run_all` replays.
    #[cfg_attr(feature = "openapi", schema(maximum = 2147483647))]
    pub max_catchup: Option<u32>,
    /// False: created paused.
    pub enabled: Option<bool>,
}

/// The settings of a schedule to change; absent ones stay. A schedule's workflow cannot change
/// (create another schedule).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeSchedule {
    /// Cron expression: 5 fields, or 6 with seconds.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256, pattern = "^[^\\x00]*$"))]
    pub expression: Option<String>,
    /// IANA time zone the expression is read in.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$"))]
    pub timezone: Option<String>,
    /// Input context of every run it starts (a JSON object).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Value>,
    /// What to do about fire times missed while no runner was up.
    pub catchup: Option<CatchupPolicy>,
    /// Most missed fire times `run_all` replays.
    #[cfg_attr(feature = "openapi", schema(maximum = 2147483647))]
    pub max_catchup: Option<u32>,
    /// False: pause it; true: resume it.
    pub enabled: Option<bool>,
}

impl ChangeSchedule {
    /// `config` with these changes.
    pub fn apply(self, mut config: ScheduleConfig) -> Result<ScheduleConfig, Error> {
        if let Some(expression) = self.expression {
            config.expression = expression;
        }
        if let Some(tz) = self.timezone {
            config = config.timezone(tz);
        }
        if let Some(context) = self.context {
            config = config.context(super::outcome::context_of(context)?);
        }
        if let Some(policy) = self.catchup {
            config = config.catchup(policy);
        }
        if let Some(n) = self.max_catchup {
            config = config.max_catchup(n);
        }
        match self.enabled {
            Some(false) => config = config.paused(),
            Some(true) => config.enabled = true,
            None => {}
        }
        Ok(config)
    }
}

impl CreateSchedule {
    /// The settings this request describes.
    pub fn into_config(self) -> Result<ScheduleConfig, Error> {
        let change = ChangeSchedule {
            expression: None,
            timezone: self.timezone,
            context: self.context,
            catchup: self.catchup,
            max_catchup: self.max_catchup,
            enabled: self.enabled,
        };
        change.apply(ScheduleConfig::new(self.workflow, self.expression))
    }
}

/// Creates a schedule for a registered workflow (a workflow no runner ever registered is
/// refused, as starting a run of it is).
pub fn create(conn: &mut AnyConnection, request: CreateSchedule, now: DateTime<Utc>) -> Outcome<CronSchedule> {
    let config = request.into_config()?;
    create_config(conn, &config, now)
}

/// [`create`] from settings built in code.
pub fn create_config(conn: &mut AnyConnection, config: &ScheduleConfig, now: DateTime<Utc>) -> Outcome<CronSchedule> {
    crate::input::text("workflow", &config.workflow, crate::input::MAX_NAME)?;
    if let Err(refused) = live_version(conn, &config.workflow, now)? {
        return Ok(Err(refused));
    }
    Ok(Ok(crate::cron::create(conn, config, now)?))
}

/// Checks that `expression` is a cron expression that fires in the IANA time zone `timezone`, as
/// a schedule reads it: what a declaration is checked with before any runner starts.
pub fn check_expression(expression: &str, timezone: &str) -> Result<(), Error> {
    crate::cron::expression::CronExpression::parse(expression, timezone)?;
    Ok(())
}

/// Creates the schedule cron trigger `declared` asks for (`#[trigger(cron = …)]`,
/// `@cloaca.trigger(cron=…)`), unless one with its name exists: a declaration creates its
/// schedule once, and an operator's later changes (pause, edit, delete) are never undone by a
/// runner starting again. Returns the schedule it created.
pub fn declare(
    conn: &mut AnyConnection,
    declared: &cloacina_workflow::CronTrigger,
    now: DateTime<Utc>,
) -> Result<Option<CronSchedule>, Error> {
    crate::input::text("trigger", &declared.name, crate::input::MAX_NAME)?;
    let config =
        ScheduleConfig::new(declared.workflow.clone(), declared.expression.clone()).timezone(declared.timezone.clone());
    let mut new = config.to_new_schedule(now)?;
    new.trigger_name = Some(declared.name.clone());
    match cron_schedules::insert_declared(conn, &new, now.into())? {
        Some(id) => Ok(Some(crate::cron::get(conn, id)?)),
        None => Ok(None),
    }
}

/// [`declare`]s each of `declared` whose workflow is among `offered` (a runner's workflows).
pub fn declare_all(
    conn: &mut AnyConnection,
    declared: &[cloacina_workflow::CronTrigger],
    offered: &[String],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    for d in declared.iter().filter(|d| offered.contains(&d.workflow)) {
        if let Some(s) = declare(conn, d, now)? {
            tracing::info!(
                schedule = %s.id,
                workflow = %s.workflow_name,
                expression = %s.cron_expression,
                trigger = %d.name,
                "created the cron schedule a trigger declared"
            );
        }
    }
    Ok(())
}

/// Changes schedule `id`; its next fire time is recomputed from `now`.
pub fn change(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    request: ChangeSchedule,
    now: DateTime<Utc>,
) -> Result<CronSchedule, Error> {
    let current = crate::cron::get(conn, id)?;
    let config = request.apply(ScheduleConfig::from_schedule(&current)?)?;
    crate::cron::update(conn, id, &config, now)
}

/// Every schedule, oldest first.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<CronSchedule>, Error> {
    Ok(cron_schedules::list(conn)?)
}

/// Schedules oldest first, only enabled ones if `enabled_only`, `limit` after skipping `offset`.
pub fn page(conn: &mut AnyConnection, enabled_only: bool, limit: u32, offset: u32) -> Result<Vec<CronSchedule>, Error> {
    Ok(cron_schedules::page(conn, enabled_only, limit, offset)?)
}

/// The fire times schedule `id` claimed, newest first, `limit` after skipping `offset`.
pub fn history(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    limit: u32,
    offset: u32,
) -> Result<Vec<CronExecution>, Error> {
    Ok(cron_executions::list_for_schedule(conn, id, limit, offset)?)
}

/// Fire times claimed since a moment (upstream Cloacina's name).
#[derive(Debug, Clone, PartialEq)]
pub struct CronExecutionStats {
    /// Fire times claimed.
    pub total_executions: i64,
    /// Those whose run was started.
    pub successful_executions: i64,
    /// Those claimed before `lost_before` whose run was never started.
    pub lost_executions: i64,
    /// `successful_executions` as a percentage of `total_executions` (0 when there are none).
    pub success_rate: f64,
}

/// How the fire times claimed since `since` went; a claim older than `lost_before` that never
/// started its run counts as lost.
pub fn stats(
    conn: &mut AnyConnection,
    since: DateTime<Utc>,
    lost_before: DateTime<Utc>,
) -> Result<CronExecutionStats, Error> {
    let counts = cron_executions::counts_since(conn, since.into(), lost_before.into())?;
    let rate = if counts.total > 0 { counts.started as f64 * 100.0 / counts.total as f64 } else { 0.0 };
    Ok(CronExecutionStats {
        total_executions: counts.total,
        successful_executions: counts.started,
        lost_executions: counts.lost,
        success_rate: rate,
    })
}

/// One schedule with its next fire times and recent history.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleDetails {
    /// The schedule.
    pub schedule: CronSchedule,
    /// Its next fire times (if resumed now, for a paused schedule).
    pub next_fire_times: Vec<DateTime<Utc>>,
    /// Its latest fire times, newest first.
    pub history: Vec<CronExecution>,
}

/// Schedule `id`, its next `upcoming` fire times and its last `recent` fire times.
pub fn details(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    upcoming: usize,
    recent: u32,
    now: DateTime<Utc>,
) -> Result<ScheduleDetails, Error> {
    let schedule = crate::cron::get(conn, id)?;
    let history = cron_executions::list_for_schedule(conn, id, recent, 0)?;
    let next_fire_times = crate::cron::upcoming(&schedule, upcoming, now)?;
    Ok(ScheduleDetails { schedule, next_fire_times, history })
}

/// Pauses a schedule: it fires nothing until resumed. Returns whether it was running.
pub fn pause(conn: &mut AnyConnection, id: CronScheduleId, now: DateTime<Utc>) -> Result<bool, Error> {
    crate::cron::pause(conn, id, now)
}

/// Resumes a paused schedule from `now` (fire times missed while paused are not run). Returns
/// whether it was paused.
pub fn resume(conn: &mut AnyConnection, id: CronScheduleId, now: DateTime<Utc>) -> Result<bool, Error> {
    crate::cron::resume(conn, id, now)
}

/// Deletes a schedule and its fire-time history (the runs it started stay); `false` when there
/// was none.
pub fn delete(conn: &mut AnyConnection, id: CronScheduleId) -> Result<bool, Error> {
    crate::cron::delete(conn, id)
}
