//! `cloacina::Error`: errors of the runtime API (runner, executor), classified by [`Error::kind`].

use crate::models::PipelineExecutionId;

/// An error from the runner API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database layer failed.
    #[error(transparent)]
    Database(#[from] crate::database::Error),
    /// A workflow definition was rejected.
    #[error(transparent)]
    Workflow(#[from] crate::workflow::Error),
    /// A context could not be built or read.
    #[error(transparent)]
    Context(#[from] crate::context::Error),
    /// No workflow of that name is registered with this runner.
    #[error("no workflow named `{0}` is registered with this runner")]
    UnknownWorkflow(String),
    /// No pipeline execution has that id.
    #[error("no pipeline execution {0}")]
    ExecutionNotFound(PipelineExecutionId),
    /// A cron schedule's settings were rejected (expression, time zone, bounds).
    #[error(transparent)]
    Schedule(#[from] crate::cron::expression::ScheduleError),
    /// No cron schedule has that id.
    #[error("no cron schedule {0}")]
    ScheduleNotFound(crate::models::CronScheduleId),
    /// No event trigger has that name (none registered by any runner).
    #[error("no event trigger named `{0}`")]
    TriggerNotFound(String),
    /// The runner is shutting down or has shut down.
    #[error("the runner is shut down")]
    ShutDown,
    /// A wait with a time limit ran out before the pipeline ended (it goes on running).
    #[error("pipeline {id} did not end within {waited:?}")]
    Timeout {
        /// The pipeline waited for.
        id: PipelineExecutionId,
        /// How long the caller waited.
        waited: std::time::Duration,
    },
    /// A runner of another host is using this SQLite database.
    #[error(
        "this SQLite database is in use by runner {runner} on another host ({host}, seen {seen_secs} s ago): SQLite's \
         locking only holds among the processes of one machine, so runners of several hosts must share a PostgreSQL \
         database (`cloacinactl db copy` moves this one there); or stop that runner"
    )]
    AnotherHost {
        /// The other runner's name.
        runner: String,
        /// Its host name.
        host: String,
        /// How long ago it last said it was alive.
        seen_secs: i64,
    },
    /// A value from outside was refused (a NUL character, a length over its limit).
    #[error("invalid {0}")]
    InvalidInput(#[from] crate::input::Invalid),
    /// A runner setting is outside its documented bounds.
    #[error("invalid setting `{setting}`: {reason}")]
    InvalidSetting {
        /// The setting, as named in [`DefaultRunnerConfig`](crate::runner::DefaultRunnerConfig).
        setting: &'static str,
        /// Its value and the bounds it must keep.
        reason: String,
    },
}

/// Broad classes of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input from the caller (unknown workflow, execution or schedule, invalid definition,
    /// schedule, setting or database URL).
    InvalidInput,
    /// The database is unreachable or busy: retrying may succeed.
    Unavailable,
    /// Anything else.
    Other,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Database(e) if e.is_retryable() => ErrorKind::Unavailable,
            Error::UnknownWorkflow(_)
            | Error::ExecutionNotFound(_)
            | Error::Workflow(_)
            | Error::Context(_)
            | Error::Schedule(_)
            | Error::ScheduleNotFound(_)
            | Error::TriggerNotFound(_)
            | Error::InvalidSetting { .. }
            | Error::InvalidInput(_)
            | Error::AnotherHost { .. } => ErrorKind::InvalidInput,
            Error::Database(e) if e.kind() == crate::database::ErrorKind::Configuration => ErrorKind::InvalidInput,
            Error::Database(_) | Error::ShutDown | Error::Timeout { .. } => ErrorKind::Other,
        }
    }
}

/// A Diesel error met by engine code that runs its own statements (inside a transaction, or an
/// injected fault) belongs to the database layer.
impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Error::Database(e.into())
    }
}
