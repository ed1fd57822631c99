//! Event triggers as operators see them: list them, read one, pause or resume one for every
//! runner, and the runs one started. Triggers themselves are defined in code and recorded by the
//! runners that have them.

use chrono::{DateTime, Utc};

use crate::dal::{trigger_executions, trigger_schedules};
use crate::database::AnyConnection;
use crate::models::{TriggerExecution, TriggerSchedule};
use crate::Error;

/// Triggers by name, only enabled ones if `enabled_only`, `limit` after skipping `offset`.
pub fn list(
    conn: &mut AnyConnection,
    enabled_only: bool,
    limit: u32,
    offset: u32,
) -> Result<Vec<TriggerSchedule>, Error> {
    Ok(trigger_schedules::list(conn, enabled_only, limit.into(), offset.into())?)
}

/// The trigger called `name`, or [`Error::TriggerNotFound`].
pub fn get(conn: &mut AnyConnection, name: &str) -> Result<TriggerSchedule, Error> {
    trigger_schedules::get(conn, name)?.ok_or_else(|| Error::TriggerNotFound(name.to_owned()))
}

/// Pauses (`false`) or resumes (`true`) trigger `name` for every runner, or
/// [`Error::TriggerNotFound`].
pub fn set_enabled(conn: &mut AnyConnection, name: &str, enabled: bool, now: DateTime<Utc>) -> Result<(), Error> {
    if trigger_schedules::set_enabled(conn, name, enabled, now.into())? {
        Ok(())
    } else {
        Err(Error::TriggerNotFound(name.to_owned()))
    }
}

/// The runs trigger `name` started, newest first, `limit` after skipping `offset`.
pub fn history(conn: &mut AnyConnection, name: &str, limit: u32, offset: u32) -> Result<Vec<TriggerExecution>, Error> {
    Ok(trigger_executions::history(conn, name, limit.into(), offset.into())?)
}
