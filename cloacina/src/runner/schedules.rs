//! The cron schedule API of [`DefaultRunner`]: create, list, read, update, pause, resume and
//! delete schedules, their next fire times and history. Every change wakes this runner's cron
//! service at once; other runners see it at their next recheck.

use chrono::{DateTime, Utc};

use super::DefaultRunner;
use crate::cron::ScheduleConfig;
use crate::database::UniversalTimestamp;
use crate::models::{CronExecution, CronSchedule, CronScheduleId};
use crate::Error;

impl DefaultRunner {
    /// Creates a cron schedule. The expression, time zone and bounds are checked now (a clear
    /// error, nothing stored, when they are wrong), and the workflow must be one this runner has.
    pub async fn create_schedule(&self, config: ScheduleConfig) -> Result<CronSchedule, Error> {
        if !self.engine.workflows.contains_key(&config.workflow) {
            return Err(Error::UnknownWorkflow(config.workflow));
        }
        let new = config.to_new_schedule(self.engine.clock.now())?;
        let now = UniversalTimestamp::from(self.engine.clock.now());
        let schedule = self
            .engine
            .db
            .run(move |c| {
                let id = crate::dal::cron_schedules::insert(c, &new, now)?;
                crate::dal::cron_schedules::get(c, id)
            })
            .await?
            .ok_or(crate::database::Error::Query(diesel::result::Error::NotFound))?;
        self.engine.schedules_changed.notify_one();
        Ok(schedule)
    }

    /// Every schedule, oldest first.
    pub async fn list_schedules(&self) -> Result<Vec<CronSchedule>, Error> {
        Ok(self.engine.db.run(crate::dal::cron_schedules::list).await?)
    }

    /// The schedule with this id.
    pub async fn get_schedule(&self, id: CronScheduleId) -> Result<CronSchedule, Error> {
        self.schedule_op(move |c, _| crate::cron::get(c, id)).await
    }

    /// Replaces a schedule's settings (checked as in [`DefaultRunner::create_schedule`]); its next
    /// fire time is recomputed from now.
    pub async fn update_schedule(&self, id: CronScheduleId, config: ScheduleConfig) -> Result<CronSchedule, Error> {
        if !self.engine.workflows.contains_key(&config.workflow) {
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
        Ok(self.engine.db.run(move |c| crate::dal::cron_executions::list_for_schedule(c, id, limit)).await?)
    }

    /// Runs a schedule operation on a pooled connection at the cron clock's "now", then wakes the
    /// cron service.
    async fn schedule_op<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut crate::database::AnyConnection, DateTime<Utc>) -> Result<T, Error> + Send + 'static,
    {
        let now = self.engine.clock.now();
        let out = self.engine.db.run_with(move |c| op(c, now)).await?;
        self.engine.schedules_changed.notify_one();
        Ok(out)
    }
}
