//! `AnyConnection`: one Diesel connection type over PostgreSQL and SQLite, chosen at run time,
//! and the settings a connection is opened with. Opening one and running transactions on it is
//! `session.rs`; what differs per backend is in `backend/`.

use std::time::Duration;

use super::{Error, Result};

mod generated {
    //! Holds the `MultiConnection` derive, whose generated helper items carry no docs.
    #![allow(missing_docs, unreachable_pub)]

    /// A connection to whichever backend the URL selected.
    ///
    /// Queries written with Diesel's DSL against [`crate::database::schema`] run through it
    /// unchanged; the generated `MultiBackend` dispatches to the inner connection.
    #[derive(diesel::MultiConnection)]
    pub enum AnyConnection {
        /// A PostgreSQL connection (libpq).
        #[cfg(feature = "postgres")]
        Postgres(diesel::PgConnection),
        /// A SQLite connection (bundled SQLite).
        #[cfg(feature = "sqlite")]
        Sqlite(diesel::SqliteConnection),
    }
}
pub use generated::{AnyConnection, MultiBackend};

/// Per-connection settings applied by [`establish`](super::establish).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// How long to wait for a PostgreSQL server to accept the connection.
    pub connect_timeout: Duration,
    /// How long a SQLite statement waits for another writer's lock before failing.
    pub busy_timeout: Duration,
    /// PostgreSQL schema to use for every table (`search_path`); `None` uses the server default.
    pub schema: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), busy_timeout: Duration::from_secs(5), schema: None }
    }
}

/// Checks a PostgreSQL schema name: 1 to 63 characters of `a-z`, `0-9`, `_`, not starting with a digit.
///
/// Validated names are interpolated into `SET search_path` and `CREATE SCHEMA`, so nothing else passes.
pub fn validate_schema_name(name: &str) -> Result<()> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["tenant_a", "t1", "_x"] {
            assert!(validate_schema_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "a-b", "Tenant", "x\"; drop table y; --", "pg_catalog", &"a".repeat(64)] {
            assert!(matches!(validate_schema_name(bad), Err(Error::InvalidSchemaName(_))), "{bad}");
        }
    }
}
