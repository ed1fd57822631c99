//! The application layer: every operator action and every query a surface shows, each rule
//! written once. The runner, the HTTP server, `cloacinactl` and the Python module call these
//! functions and convert their results; none of them reaches into the DAL.
//!
//! - [`runs`]: start, retry, cancel, pause, resume and prune runs; list them; a run's details
//!   (tasks, attempts, contexts, graph and the reasons it waits, [`Waiting`]).
//! - [`schedules`]: create, change, pause, resume, delete and read cron schedules.
//! - [`triggers`]: list, read, pause and resume event triggers, and the runs they started.
//! - [`workflows`]: the registered workflow versions, which are live, and the version a new run
//!   starts at.
//! - [`liveness`]: which runners are up and which workflow versions they have (the `runners`
//!   table, one rule for every question about liveness).
//! - [`database`]: migrations, a database's status, the gauges `/metrics` shows.
//! - [`copy`]: `db copy`, one database into another, verified.
//!
//! Actions return [`Outcome`]: `Ok(Err(Refused))` when the request cannot apply (no such run, a
//! run in another status), so surfaces tell "refused" (4xx, exit codes 3 and 4) from "failed".

pub mod copy;
pub mod database;
pub mod liveness;
pub mod runs;
pub mod schedules;
pub mod triggers;
mod waiting;
pub mod workflows;

use serde_json::Value;

use crate::models::{PipelineExecutionId, PipelineStatus};
use crate::Context;

pub use liveness::{Liveness, WaitingForVersion, LIVE_WINDOW};
pub use runs::RunDetails;
pub use waiting::Waiting;

/// Why an operator action was refused (as opposed to failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// No run has that id.
    #[error("no run {0}")]
    NoRun(PipelineExecutionId),
    /// No runner ever registered the workflow.
    #[error("no workflow named `{0}` is registered")]
    NoWorkflow(String),
    /// The run is not in a status the action applies to.
    #[error("run {id} is {status}: {action} applies to {applies_to}")]
    WrongStatus {
        /// The run.
        id: PipelineExecutionId,
        /// Its status.
        status: PipelineStatus,
        /// The action.
        action: &'static str,
        /// The statuses it applies to.
        applies_to: &'static str,
    },
}

/// What an action did: `Ok(Ok(x))` done, `Ok(Err(refused))` refused, `Err` failed.
pub type Outcome<T> = Result<Result<T, Refused>, crate::Error>;

/// A context given as JSON (a request body, a command-line argument): an object; `null` is the
/// empty context.
pub fn context_of(value: Value) -> Result<Context<Value>, crate::Error> {
    match value {
        Value::Null => Ok(Context::new()),
        v @ Value::Object(_) => Ok(Context::from_value(v)?),
        _ => Err(crate::input::Invalid { field: "context".into(), reason: "must be a JSON object".into() }.into()),
    }
}
