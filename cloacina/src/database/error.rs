//! `database::Error`: everything that can go wrong below the engine, classified by [`Error::kind`].

use super::kind::Backend;

/// Every URL form accepted, as listed in error messages.
pub(crate) const SUPPORTED_FORMS: &str =
    "postgres://…, postgresql://…, sqlite://path, sqlite:///abs/path, sqlite::memory:, file:…, or a file path";

/// Result alias for the database layer and the DAL.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the database layer or the DAL. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL's scheme names no backend Cloacina has (`mysql://`, a typo, an empty string).
    #[error(
        "unsupported database URL scheme {}; supported: {}",
        if scheme.is_empty() { "(empty URL)".to_owned() } else { format!("`{scheme}`") },
        SUPPORTED_FORMS
    )]
    UnsupportedScheme {
        /// The scheme as written, with its `://` (empty for an empty URL).
        scheme: String,
    },
    /// The URL has a supported form but cannot be used as written (no file path, a libpq
    /// keyword/value string). The reason never repeats a password.
    #[error("invalid database URL: {reason}")]
    InvalidUrl {
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// The URL selects a backend this binary was built without.
    #[error("the {backend} backend is not compiled into this binary; rebuild with the Cargo feature `{}`", backend.cargo_feature())]
    BackendNotCompiled {
        /// The backend the URL asked for.
        backend: Backend,
    },
    /// The database could not be reached or opened. `url` is redacted; `reason` is the driver's own words.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL with its password replaced by `***`.
        url: String,
        /// The driver's message (authentication failed, connection refused, unable to open file, …).
        reason: String,
    },
    /// No pooled connection became free within the pool's timeout.
    #[error("database pool: {0}")]
    Pool(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// Applying or inspecting migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database was migrated by a newer Cloacina than this binary: refused rather than half-used.
    #[error(
        "the database schema is newer than this binary: it has migration(s) {unknown:?} that this version does not know \
         (latest known: {latest_known}); upgrade Cloacina or point it at another database"
    )]
    SchemaTooNew {
        /// Applied migration versions this binary does not ship.
        unknown: Vec<String>,
        /// The newest migration version this binary ships.
        latest_known: String,
    },
    /// A PostgreSQL schema name that is not a plain identifier.
    #[error("invalid schema name `{0}`: use 1 to 63 characters of a-z, 0-9 and _, not starting with a digit")]
    InvalidSchemaName(String),
    /// A schema (tenant namespace) was asked for on a backend that has none.
    #[error("the {0} backend has no schemas; use one database file per tenant instead")]
    SchemasUnsupported(Backend),
    /// A stored value could not be decoded into its domain type.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// Table the row came from.
        table: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// A SQLite file on a network or FUSE file system (see `database::filesystem`).
    #[error(
        "the SQLite database {path} is on a {fstype} file system (mounted at {mount}), where SQLite's file locking \
         cannot be trusted and two hosts writing one file corrupt it: use PostgreSQL to share work across hosts \
         (`cloacinactl db copy` moves a SQLite database there), or set CLOACINA_SQLITE_ALLOW_NETWORK_FS=1 if you \
         know this file system locks correctly"
    )]
    NetworkFilesystem {
        /// The database file.
        path: String,
        /// The file system's type, as the kernel names it (`nfs4`, `fuse.sshfs`, …).
        fstype: String,
        /// Where it is mounted.
        mount: String,
    },
    /// A blocking database task panicked or was cancelled.
    #[error("database task did not finish: {0}")]
    Task(String),
}

/// Broad classes of [`Error`], so callers decide without matching on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller's configuration is wrong (URL, feature, schema name): retrying will not help.
    Configuration,
    /// The database is unreachable or busy: retrying later may succeed.
    Unavailable,
    /// The database holds something this binary cannot use (newer schema, corrupt row).
    Incompatible,
    /// A query failed for another reason (constraint violation, bug).
    Query,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnsupportedScheme { .. }
            | Error::InvalidUrl { .. }
            | Error::BackendNotCompiled { .. }
            | Error::InvalidSchemaName(_)
            | Error::SchemasUnsupported(_)
            | Error::NetworkFilesystem { .. } => ErrorKind::Configuration,
            Error::Connect { .. } | Error::Pool(_) | Error::Task(_) => ErrorKind::Unavailable,
            Error::SchemaTooNew { .. } | Error::Corrupt { .. } => ErrorKind::Incompatible,
            Error::Query(e) if is_transient(e) => ErrorKind::Unavailable,
            Error::Query(_) | Error::Migration(_) => ErrorKind::Query,
        }
    }

    /// True when the same operation may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

/// Serialization failures (SQLSTATE 40001) and lost connections (class 08, or a connection libpq
/// reports as bad): the same statement may succeed on another try.
///
/// Classified by the kinds Diesel derives from the database's error codes, never by message text.
/// Diesel 2.3 reports other codes, PostgreSQL's deadlock (40P01) and SQLite's `SQLITE_BUSY`
/// included, as an unknown kind and exposes no code for them; those land in [`ErrorKind::Query`].
/// The engine still retries its own steps on such errors a bounded number of times, and its lock
/// order keeps it from deadlocking with itself (see ARCHITECTURE.md).
fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    matches!(e, E::DatabaseError(K::SerializationFailure | K::ClosedConnection | K::UnableToSendCommand, _))
}
