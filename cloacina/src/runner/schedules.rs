//! The cron schedule API of [`DefaultRunner`]: create, list, read, update, pause, resume and
//! delete schedules, their next fire times and history; and the same under upstream Cloacina's
//! names (`register_cron_workflow`, `list_cron_schedules`, …). Every change wakes this runner's
//! cron service at once; other runners see it at their next recheck.

use chrono::{DateTime, Utc};

use super::DefaultRunner;
use crate::cron::ScheduleConfig;
use crate::models::{CatchupPolicy, CronExecution, CronSchedule, CronScheduleId};
use crate::ops::schedules::{self, CronExecutionStats};
use crate::Error;

/// A page bound from upstream's `i64` arguments: negative is a clear error.
pub(super) fn page_bound(name: &'static str, value: i64) -> Result<u32, Error> {
    u32::try_from(value.max(0)).ok().filter(|_| value >= 0).ok_or_else(|| Error::InvalidSetting {
        setting: name,
        reason: format!("is {value}; must be between 0 and {}", u32::MAX),
    })
}

impl DefaultRunner {
    /// Creates a cron schedule. The expression, time zone and bounds are checked now (a clear
    /// error, nothing stored, when they are wrong), and the workflow must be one this runner has.
    pub async fn create_schedule(&self, config: ScheduleConfig) -> Result<CronSchedule, Error> {
        if self.engine.catalog.now().offered(&config.workflow).is_none() {
            return Err(Error::UnknownWorkflow(config.workflow));
        }
        self.schedule_op(move |c, now| crate::cron::create(c, &config, now)).await
    }

    /// Every schedule, oldest first.
    pub async fn list_schedules(&self) -> Result<Vec<CronSchedule>, Error> {
        self.engine.store.db.run_with(schedules::list).await
    }

    /// The schedule with this id.
    pub async fn get_schedule(&self, id: CronScheduleId) -> Result<CronSchedule, Error> {
        self.schedule_op(move |c, _| crate::cron::get(c, id)).await
    }

    /// Replaces a schedule's settings (checked as in [`DefaultRunner::create_schedule`]); its next
    /// fire time is recomputed from now.
    pub async fn update_schedule(&self, id: CronScheduleId, config: ScheduleConfig) -> Result<CronSchedule, Error> {
        if self.engine.catalog.now().offered(&config.workflow).is_none() {
            return Err(Error::UnknownWorkflow(config.workflow));
        }
        self.schedule_op(move |c, now| crate::cron::update(c, id, &config, now)).await
    }

    /// Pauses a schedule; returns whether it was running.
    pub async fn pause_schedule(&self, id: CronScheduleId) -> Result<bool, Error> {
        self.schedule_op(move |c, now| crate::cron::pause(c, id, now)).await
    }

    /// Resumes a paused schedule from now (times passed while paused are not run); returns
    /// whether it was paused.
    pub async fn resume_schedule(&self, id: CronScheduleId) -> Result<bool, Error> {
        self.schedule_op(move |c, now| crate::cron::resume(c, id, now)).await
    }

    /// Deletes a schedule and its fire-time history; returns whether it existed.
    pub async fn delete_schedule(&self, id: CronScheduleId) -> Result<bool, Error> {
        self.schedule_op(move |c, _| crate::cron::delete(c, id)).await
    }

    /// The next `n` fire times of a schedule.
    pub async fn next_fire_times(&self, id: CronScheduleId, n: usize) -> Result<Vec<DateTime<Utc>>, Error> {
        self.schedule_op(move |c, now| crate::cron::upcoming(&crate::cron::get(c, id)?, n, now)).await
    }

    /// The fire times a schedule has claimed, newest first, with the pipeline each started.
    pub async fn schedule_history(&self, id: CronScheduleId, limit: u32) -> Result<Vec<CronExecution>, Error> {
        self.engine.store.db.run_with(move |c| schedules::history(c, id, limit, 0)).await
    }

    /// Upstream's `register_cron_workflow`: a schedule of `workflow` on `expression` in `timezone`
    /// (an IANA name, or "UTC"), missed fire times skipped; returns its id.
    pub async fn register_cron_workflow(
        &self,
        workflow: &str,
        expression: &str,
        timezone: &str,
    ) -> Result<CronScheduleId, Error> {
        let config = ScheduleConfig::new(workflow, expression).timezone(timezone).catchup(CatchupPolicy::Skip);
        Ok(self.create_schedule(config).await?.id)
    }

    /// Upstream's `list_cron_schedules`: oldest first, only enabled ones if `enabled_only`,
    /// `limit` after skipping `offset` (negative bounds are refused).
    pub async fn list_cron_schedules(
        &self,
        enabled_only: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<CronSchedule>, Error> {
        let (limit, offset) = (page_bound("limit", limit)?, page_bound("offset", offset)?);
        self.engine.store.db.run_with(move |c| schedules::page(c, enabled_only, limit, offset)).await
    }

    /// Upstream's `get_cron_schedule`.
    pub async fn get_cron_schedule(&self, id: CronScheduleId) -> Result<CronSchedule, Error> {
        self.get_schedule(id).await
    }

    /// Upstream's `set_cron_schedule_enabled`: resumes (from now) or pauses the schedule.
    pub async fn set_cron_schedule_enabled(&self, id: CronScheduleId, enabled: bool) -> Result<(), Error> {
        if enabled {
            self.resume_schedule(id).await.map(drop)
        } else {
            self.pause_schedule(id).await.map(drop)
        }
    }

    /// Upstream's `delete_cron_schedule`: `Ok` whether or not it existed.
    pub async fn delete_cron_schedule(&self, id: CronScheduleId) -> Result<(), Error> {
        self.delete_schedule(id).await.map(drop)
    }

    /// Upstream's `update_cron_schedule`: a new expression and/or time zone (checked as at
    /// creation); the next fire time is recomputed from now, the other settings kept.
    pub async fn update_cron_schedule(
        &self,
        id: CronScheduleId,
        expression: Option<&str>,
        timezone: Option<&str>,
    ) -> Result<(), Error> {
        let current = self.get_schedule(id).await?;
        let mut config = ScheduleConfig::from_schedule(&current)?;
        if let Some(expression) = expression {
            config.expression = expression.to_owned();
        }
        if let Some(timezone) = timezone {
            config.timezone = timezone.to_owned();
        }
        self.update_schedule(id, config).await.map(drop)
    }

    /// Upstream's `get_cron_execution_history`: fire times newest first, `limit` after `offset`.
    pub async fn get_cron_execution_history(
        &self,
        id: CronScheduleId,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<CronExecution>, Error> {
        let (limit, offset) = (page_bound("limit", limit)?, page_bound("offset", offset)?);
        self.engine.store.db.run_with(move |c| schedules::history(c, id, limit, offset)).await
    }

    /// Upstream's `get_cron_execution_stats`: fire times claimed since `since`, how many started
    /// their pipeline, and how many were lost (claimed more than a lease ago, never started).
    pub async fn get_cron_execution_stats(&self, since: DateTime<Utc>) -> Result<CronExecutionStats, Error> {
        let lease = chrono::Duration::from_std(self.engine.settings.config.lease_duration).unwrap_or_default();
        let lost_before = self.engine.clock.now() - lease;
        self.engine.store.db.run_with(move |c| schedules::stats(c, since, lost_before)).await
    }

    /// Runs a schedule operation on a pooled connection at the cron clock's "now", then wakes the
    /// cron service.
    async fn schedule_op<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::database::AnyConnection, DateTime<Utc>) -> Result<T, Error> + Send + 'static,
    {
        let now = self.engine.clock.now();
        let out = self.engine.store.db.run_with(move |c| op(c, now)).await?;
        self.engine.signals.schedules_changed.notify_one();
        Ok(out)
    }
}
