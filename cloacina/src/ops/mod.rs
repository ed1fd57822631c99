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
//! - [`overview`]: one workflow at a glance: runs per status over time, task duration
//!   percentiles, its Ready queue.
//! - [`liveness`]: which runners are up and which workflow versions they have (the `runners`
//!   table, one rule for every question about liveness).
//! - [`packages`]: the workflow packages daemons loaded, and the rules of admitting one.
//! - [`database`]: migrations, a database's status, the gauges `/metrics` shows.
//! - [`copy`]: `db copy`, one database into another, verified.
//!
//! Actions return [`Outcome`]: `Ok(Err(Refused))` when the request cannot apply (no such run, a
//! run in another status), so surfaces tell "refused" (4xx, exit codes 3 and 4) from "failed".

pub mod copy;
pub mod database;
pub mod events;
pub mod liveness;
mod outcome;
pub mod overview;
pub mod packages;
pub mod runs;
pub mod schedules;
pub mod triggers;
mod waiting;
pub mod workflows;

pub use liveness::{Liveness, WaitingForVersion, LIVE_WINDOW};
pub use outcome::{context_of, Outcome, Refused};
pub use runs::RunDetails;
pub use waiting::Waiting;
