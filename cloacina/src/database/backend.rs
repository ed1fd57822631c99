//! The backends Cloacina knows, and what each can do.
//!
//! Code above `database/` never asks "is this Postgres?"; it asks [`Backend::supports`] for the
//! capability it needs, so a behaviour difference has a name and a place in this catalogue.

use std::fmt;

/// A database backend Cloacina can run on. Which one is in use is decided at run time by the
/// connection URL ([`super::DatabaseUrl::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL: production, many runner processes on many hosts sharing one database.
    Postgres,
    /// SQLite (bundled): the embedded default, one host, zero setup.
    Sqlite,
}

/// One capability the engine or the operator tooling branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendFeature {
    /// `SELECT … FOR UPDATE SKIP LOCKED`: claimers skip each other's rows instead of queueing.
    /// Without it, claims are serialised by a write lock (`BEGIN IMMEDIATE` on SQLite).
    SkipLocked,
    /// `LISTEN`/`NOTIFY`: a process can be woken by another process's commit.
    ListenNotify,
    /// Session-level advisory locks (used to serialise migrations across processes).
    AdvisoryLocks,
    /// A native `uuid` column type (SQLite stores 16-byte BLOBs instead).
    NativeUuid,
    /// Named schemas, so tenants can share one database in separate namespaces.
    Schemas,
    /// Writers on several hosts at once (SQLite is one host: its locks need a local file system).
    MultiHostWriters,
    /// Writers that proceed in parallel (SQLite admits one writer at a time).
    ConcurrentWriters,
    /// A database that lives only in memory for the life of the process.
    InMemory,
    /// The query planner chooses plans from table statistics, which must be refreshed after bulk
    /// inserts (PostgreSQL `ANALYZE`); with stale statistics it can pick a plan whose cost grows
    /// with the table. SQLite's planner uses its indexes without statistics.
    PlannerStatistics,
}

impl Backend {
    /// Every backend, compiled in or not.
    pub const ALL: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

    /// Stable lowercase name, as shown by `cloacinactl db status`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The Cargo feature that compiles this backend in.
    pub fn cargo_feature(self) -> &'static str {
        self.name()
    }

    /// True when this binary was built with the backend's Cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::Sqlite => cfg!(feature = "sqlite"),
        }
    }

    /// Whether this backend has `feature`.
    pub fn supports(self, feature: BackendFeature) -> bool {
        use BackendFeature::*;
        match self {
            Backend::Postgres => match feature {
                SkipLocked | ListenNotify | AdvisoryLocks | NativeUuid | Schemas | MultiHostWriters
                | ConcurrentWriters | PlannerStatistics => true,
                InMemory => false,
            },
            Backend::Sqlite => match feature {
                InMemory => true,
                SkipLocked | ListenNotify | AdvisoryLocks | NativeUuid | Schemas | MultiHostWriters
                | ConcurrentWriters | PlannerStatistics => false,
            },
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_matches_the_documented_differences() {
        assert!(Backend::Postgres.supports(BackendFeature::SkipLocked));
        assert!(!Backend::Sqlite.supports(BackendFeature::SkipLocked));
        assert!(!Backend::Sqlite.supports(BackendFeature::Schemas));
        assert!(Backend::Sqlite.supports(BackendFeature::InMemory));
        assert!(!Backend::Sqlite.supports(BackendFeature::MultiHostWriters));
    }
}
