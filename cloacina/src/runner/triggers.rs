//! The event-trigger API of [`DefaultRunner`] (upstream Cloacina's names): list triggers, pause
//! or resume one, and read the runs one started. Triggers themselves are defined in code
//! (`#[trigger]`, `DefaultRunnerBuilder::trigger`) and recorded by the runners that have them.

use super::schedules::page_bound;
use super::DefaultRunner;
use crate::models::{TriggerExecution, TriggerSchedule};
use crate::ops::triggers;
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
        self.engine.store.db.run_with(move |c| triggers::list(c, enabled_only, limit, offset)).await
    }

    /// The trigger called `name`.
    pub async fn get_trigger_schedule(&self, name: &str) -> Result<TriggerSchedule, Error> {
        let key = name.to_owned();
        self.engine.store.db.run_with(move |c| triggers::get(c, &key)).await
    }

    /// Upstream's `set_trigger_enabled`: pauses (`false`) or resumes (`true`) a trigger for every
    /// runner; a paused trigger is not polled and its fires in flight are dropped.
    pub async fn set_trigger_enabled(&self, name: &str, enabled: bool) -> Result<(), Error> {
        let (key, now) = (name.to_owned(), self.engine.clock.now());
        self.engine.store.db.run_with(move |c| triggers::set_enabled(c, &key, enabled, now)).await
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
        self.engine.store.db.run_with(move |c| triggers::history(c, &key, limit, offset)).await
    }
}
