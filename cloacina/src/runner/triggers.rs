//! The event-trigger API of [`DefaultRunner`] (upstream Cloacina's names): list triggers, pause
//! or resume one, and read the runs one started. Triggers themselves are defined in code
//! (`#[trigger]`, `DefaultRunnerBuilder::trigger`) and recorded by the runners that have them.

use super::schedules::page_bound;
use super::DefaultRunner;
use crate::dal::{trigger_executions, trigger_schedules};
use crate::models::{TriggerExecution, TriggerSchedule};
use crate::Error;

impl DefaultRunner {
    /// Upstream's `list_trigger_schedules`: triggers by name, only enabled ones if
    /// `enabled_only`, `limit` after skipping `offset` (negative bounds are refused).
    pub async fn list_trigger_schedules(
        &self,
        enabled_only: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TriggerSchedule>, Error> {
        let (limit, offset) = (page_bound("limit", limit)?, page_bound("offset", offset)?);
        Ok(self.engine.db.run(move |c| trigger_schedules::list(c, enabled_only, limit.into(), offset.into())).await?)
    }

    /// The trigger called `name`.
    pub async fn get_trigger_schedule(&self, name: &str) -> Result<TriggerSchedule, Error> {
        let key = name.to_owned();
        self.engine
            .db
            .run(move |c| trigger_schedules::get(c, &key))
            .await?
            .ok_or_else(|| Error::TriggerNotFound(name.to_owned()))
    }

    /// Upstream's `set_trigger_enabled`: pauses (`false`) or resumes (`true`) a trigger for every
    /// runner; a paused trigger is not polled and its fires in flight are dropped.
    pub async fn set_trigger_enabled(&self, name: &str, enabled: bool) -> Result<(), Error> {
        let (key, now) = (name.to_owned(), self.engine.now());
        let found = self.engine.db.run(move |c| trigger_schedules::set_enabled(c, &key, enabled, now)).await?;
        if found {
            Ok(())
        } else {
            Err(Error::TriggerNotFound(name.to_owned()))
        }
    }

    /// Upstream's `get_trigger_execution_history`: the runs trigger `name` started, newest first,
    /// `limit` after `offset`.
    pub async fn get_trigger_execution_history(
        &self,
        name: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TriggerExecution>, Error> {
        let (limit, offset) = (page_bound("limit", limit)?, page_bound("offset", offset)?);
        let key = name.to_owned();
        Ok(self.engine.db.run(move |c| trigger_executions::history(c, &key, limit.into(), offset.into())).await?)
    }
}
