//! Pipeline and task statuses, stored as text. Every change between them is a conditional update
//! in the DAL (`… WHERE status = <expected>`).

use std::fmt;
use std::str::FromStr;

/// A stored status string that names no known status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}`")]
pub struct UnknownStatus(pub String);

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),* $(,)? } terminal: [$($term:ident),*]) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every status.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stored text form (the variant name).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)*
                }
            }

            /// True when nothing further will happen to this row.
            pub const fn is_terminal(self) -> bool {
                matches!(self, $($name::$term)|*)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($variant) => Ok($name::$variant),)*
                    other => Err(UnknownStatus(other.to_owned())),
                }
            }
        }
    };
}

status_enum! {
    /// Where a pipeline execution stands.
    PipelineStatus {
        /// Created; no task has started yet.
        Pending,
        /// At least one task has been claimed.
        Running,
        /// Paused by an operator: no new tasks are claimed until resumed.
        Paused,
        /// Every task reached a terminal state and none failed the pipeline.
        Completed,
        /// A task failed and the pipeline cannot complete.
        Failed,
        /// Cancelled by a user or operator.
        Cancelled,
    }
    terminal: [Completed, Failed, Cancelled]
}

status_enum! {
    /// Where a task execution stands.
    TaskStatus {
        /// Waiting for its dependencies.
        NotStarted,
        /// Claimable (at once, or from `retry_at` on).
        Ready,
        /// Claimed by a runner holding a lease.
        Running,
        /// Finished successfully; its output context is stored.
        Completed,
        /// Failed for good (attempts spent, or a fatal error).
        Failed,
        /// Not run because its trigger rules did not hold.
        Skipped,
        /// Not run because its pipeline was cancelled.
        Cancelled,
    }
    terminal: [Completed, Failed, Skipped, Cancelled]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(*s));
        }
        for s in PipelineStatus::ALL {
            assert_eq!(s.as_str().parse::<PipelineStatus>(), Ok(*s));
        }
        assert!("ready".parse::<TaskStatus>().is_err());
    }
}
