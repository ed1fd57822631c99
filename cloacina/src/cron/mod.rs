//! Cron schedules: expressions in a time zone ([`CronExpression`]), schedule settings
//! ([`ScheduleConfig`]), the runner's clock ([`Clock`], re-exported from [`crate::clock`]),
//! and operations on stored schedules that need no runner (pause, resume, delete, upcoming fire
//! times: `cloacinactl` uses them). The service every runner runs, which starts exactly one
//! pipeline per (schedule, fire time) across all runners, is `services::cron`.
//!
//! Catch-up: a fire time handled within the runner's `cron_late_threshold` is on time and always
//! runs. Older ones were missed (every runner was down, or the schedule's workflow had no runner)
//! and follow the schedule's [`CatchupPolicy`]: `Skip` drops them, `RunOnce` runs the latest
//! of them once, `RunAll` runs the most recent `max_catchup` of them, oldest first.

pub(crate) mod expression;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use expression::{CronExpression, ScheduleError};

use crate::dal::cron_schedules::{self as schedules, NewSchedule};
use crate::database::{AnyConnection, UniversalTimestamp};
use crate::models::{CatchupPolicy, CronSchedule, CronScheduleId};
use crate::{input, Context, Error};

/// The settings of a schedule, for [`DefaultRunner::create_schedule`](crate::runner::DefaultRunner::create_schedule)
/// and `update_schedule`. [`ScheduleConfig::new`] gives the defaults: UTC, an empty input
/// context, enabled, [`CatchupPolicy::Skip`], at most 10 catch-up runs, no start or end.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    /// The workflow each fire time starts.
    pub workflow: String,
    /// Cron expression: 5 fields (`min hour day month weekday`) or 6 with seconds first.
    pub expression: String,
    /// IANA time zone the expression is read in (default `UTC`).
    pub timezone: String,
    /// Input context of every pipeline it starts.
    pub context: Context<Value>,
    /// False to create it paused.
    pub enabled: bool,
    /// What to do about fire times missed while no runner handled them.
    pub catchup: CatchupPolicy,
    /// Most missed fire times [`CatchupPolicy::RunAll`] runs (the most recent ones).
    pub max_catchup: u32,
    /// No fire time before this.
    pub start_at: Option<DateTime<Utc>>,
    /// No fire time after this.
    pub end_at: Option<DateTime<Utc>>,
}

impl ScheduleConfig {
    /// A schedule of `workflow` at `expression`, with the defaults.
    pub fn new(workflow: impl Into<String>, expression: impl Into<String>) -> Self {
        Self {
            workflow: workflow.into(),
            expression: expression.into(),
            timezone: "UTC".to_owned(),
            context: Context::new(),
            enabled: true,
            catchup: CatchupPolicy::Skip,
            max_catchup: 10,
            start_at: None,
            end_at: None,
        }
    }

    /// Reads the expression in the IANA time zone `tz`.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// Sets the input context of every run.
    pub fn context(mut self, context: Context<Value>) -> Self {
        self.context = context;
        self
    }

    /// Sets the catch-up policy.
    pub fn catchup(mut self, policy: CatchupPolicy) -> Self {
        self.catchup = policy;
        self
    }

    /// Sets how many missed fire times `RunAll` runs at most.
    pub fn max_catchup(mut self, n: u32) -> Self {
        self.max_catchup = n;
        self
    }

    /// No fire time before `t`.
    pub fn start_at(mut self, t: DateTime<Utc>) -> Self {
        self.start_at = Some(t);
        self
    }

    /// No fire time after `t`.
    pub fn end_at(mut self, t: DateTime<Utc>) -> Self {
        self.end_at = Some(t);
        self
    }

    /// Creates it paused.
    pub fn paused(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// The settings of a stored schedule (to change some of them and update it); an error if its
    /// stored context is not a JSON object (edited by hand).
    pub fn from_schedule(s: &CronSchedule) -> Result<Self, crate::context::Error> {
        Ok(Self {
            workflow: s.workflow_name.clone(),
            expression: s.cron_expression.clone(),
            timezone: s.timezone.clone(),
            context: Context::from_value(s.context.clone())?,
            enabled: s.enabled,
            catchup: s.catchup_policy,
            max_catchup: s.max_catchup,
            start_at: s.start_at,
            end_at: s.end_at,
        })
    }

    /// Checks everything and computes the first fire time after `now`: the row to store.
    pub(crate) fn to_new_schedule(&self, now: DateTime<Utc>) -> Result<NewSchedule, ScheduleError> {
        let checked = input::text("workflow", &self.workflow, input::MAX_NAME)
            .and_then(|()| input::text("expression", &self.expression, input::MAX_CRON_EXPRESSION))
            .and_then(|()| input::text("timezone", &self.timezone, input::MAX_TIMEZONE))
            .and_then(|()| input::context("context", &self.context));
        checked.map_err(|e| ScheduleError::Invalid(e.to_string()))?;
        let expression = CronExpression::parse(&self.expression, &self.timezone)?;
        if let (Some(start), Some(end)) = (self.start_at, self.end_at) {
            if end < start {
                return Err(ScheduleError::EndsBeforeStart { start, end });
            }
        }
        let i32_max = u32::try_from(i32::MAX).unwrap_or(u32::MAX);
        if self.max_catchup > i32_max {
            return Err(ScheduleError::Invalid(format!("max_catchup {} is above {i32_max}", self.max_catchup)));
        }
        let bounds = Bounds { start_at: self.start_at, end_at: self.end_at };
        let next = bounds.next_fire(&expression, now);
        if next.is_none() {
            return Err(ScheduleError::Invalid(format!(
                "the schedule has no fire time after {now}: its end_at has passed"
            )));
        }
        Ok(NewSchedule {
            workflow_name: self.workflow.clone(),
            cron_expression: self.expression.clone(),
            timezone: self.timezone.clone(),
            context: self.context.to_value(),
            enabled: self.enabled,
            catchup_policy: self.catchup,
            max_catchup: self.max_catchup,
            start_at: self.start_at,
            end_at: self.end_at,
            next_run_at: if self.enabled { next } else { None },
            trigger_name: None,
        })
    }
}

/// A schedule's optional start and end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) start_at: Option<DateTime<Utc>>,
    pub(crate) end_at: Option<DateTime<Utc>>,
}

impl Bounds {
    pub(crate) fn of(s: &CronSchedule) -> Self {
        Self { start_at: s.start_at, end_at: s.end_at }
    }

    /// The first fire time after `after` within the bounds (`start_at` itself may fire).
    pub(crate) fn next_fire(&self, expression: &CronExpression, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start_at {
            Some(start) if start > after => start - chrono::Duration::microseconds(1),
            _ => after,
        };
        expression.next_after(after).filter(|t| self.end_at.is_none_or(|end| *t <= end))
    }
}

/// Creates a schedule from `config` (checked: expression, time zone, bounds). The caller checks
/// that the workflow exists (a runner: that it has it; an operator tool: that it is registered).
pub fn create(conn: &mut AnyConnection, config: &ScheduleConfig, now: DateTime<Utc>) -> Result<CronSchedule, Error> {
    let new = config.to_new_schedule(now)?;
    let id = schedules::insert(conn, &new, now.into())?;
    get(conn, id)
}

/// The schedule with this id, or [`Error::ScheduleNotFound`].
pub fn get(conn: &mut AnyConnection, id: CronScheduleId) -> Result<CronSchedule, Error> {
    schedules::get(conn, id)?.ok_or(Error::ScheduleNotFound(id))
}

/// Pauses a schedule: it fires nothing until resumed. Returns whether it was running.
pub fn pause(conn: &mut AnyConnection, id: CronScheduleId, now: DateTime<Utc>) -> Result<bool, Error> {
    get(conn, id)?;
    Ok(schedules::set_enabled(conn, id, false, None, now.into())?)
}

/// Resumes a paused schedule from `now`: fire times that passed while it was paused are not run
/// (pausing means "do not run"). Returns whether it was paused.
pub fn resume(conn: &mut AnyConnection, id: CronScheduleId, now: DateTime<Utc>) -> Result<bool, Error> {
    let s = get(conn, id)?;
    let next = Bounds::of(&s).next_fire(&CronExpression::parse(&s.cron_expression, &s.timezone)?, now);
    Ok(schedules::set_enabled(conn, id, true, next, now.into())?)
}

/// Deletes a schedule and its fire-time history (the pipelines it started stay). Returns whether
/// it existed.
pub fn delete(conn: &mut AnyConnection, id: CronScheduleId) -> Result<bool, Error> {
    Ok(schedules::delete(conn, id)?)
}

/// Replaces a schedule's settings; its next fire time is recomputed from `now`.
pub fn update(
    conn: &mut AnyConnection,
    id: CronScheduleId,
    config: &ScheduleConfig,
    now: DateTime<Utc>,
) -> Result<CronSchedule, Error> {
    let new = config.to_new_schedule(now)?;
    if !schedules::replace(conn, id, &new, UniversalTimestamp::from(now))? {
        return Err(Error::ScheduleNotFound(id));
    }
    get(conn, id)
}

/// Most fire times [`upcoming`] returns, whatever is asked.
pub const MAX_UPCOMING: usize = 1_000;

/// The next `n` fire times of a schedule (at most [`MAX_UPCOMING`]), from its stored next fire
/// time (for a paused schedule: from `now`, as if resumed). Fewer when the schedule ends first.
pub fn upcoming(schedule: &CronSchedule, n: usize, now: DateTime<Utc>) -> Result<Vec<DateTime<Utc>>, Error> {
    let n = n.min(MAX_UPCOMING);
    let expression = CronExpression::parse(&schedule.cron_expression, &schedule.timezone)?;
    let bounds = Bounds::of(schedule);
    let mut next = if schedule.enabled { schedule.next_run_at } else { bounds.next_fire(&expression, now) };
    let mut times = Vec::with_capacity(n);
    while let Some(t) = next.filter(|_| times.len() < n) {
        times.push(t);
        next = bounds.next_fire(&expression, t);
    }
    Ok(times)
}
