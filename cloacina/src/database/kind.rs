//! Which database ([`Backend`]) and what it can do ([`BackendFeature`]): the catalogue code above
//! the database layer asks (`Backend::supports`) instead of testing which backend it is.

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

/// A capability that code above the database layer asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendFeature {
    /// Named schemas, so tenants can share one database in separate namespaces.
    Schemas,
    /// A process can be woken by another process's commit (`LISTEN`/`NOTIFY`); without it,
    /// runners poll for work created elsewhere.
    ListenNotify,
    /// Runners on several hosts may share one database. SQLite's locking holds only among the
    /// processes of one machine, so a runner refuses to start on a SQLite database another host's
    /// runner is using.
    MultiHost,
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
        match (self, feature) {
            (Backend::Postgres, BackendFeature::Schemas | BackendFeature::ListenNotify | BackendFeature::MultiHost) => {
                true
            }
            (Backend::Sqlite, BackendFeature::Schemas | BackendFeature::ListenNotify | BackendFeature::MultiHost) => {
                false
            }
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
        assert!(Backend::Postgres.supports(BackendFeature::Schemas));
        assert!(!Backend::Sqlite.supports(BackendFeature::Schemas));
        assert!(Backend::Postgres.supports(BackendFeature::ListenNotify));
        assert!(!Backend::Sqlite.supports(BackendFeature::ListenNotify));
        assert!(Backend::Postgres.supports(BackendFeature::MultiHost));
        assert!(!Backend::Sqlite.supports(BackendFeature::MultiHost));
    }
}
