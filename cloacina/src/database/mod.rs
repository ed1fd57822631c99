//! The persistence foundation: URL → backend selection, `AnyConnection`, the unified schema and
//! its custom types, embedded migrations, and [`Database`], a pool of `AnyConnection`.
//!
//! Everything backend-specific lives in `backend/` (mirrored `postgres.rs` and `sqlite.rs`); the
//! DAL above reaches it through [`write_transaction`], the `on_inner!` and
//! `load_skip_locked!` macros, and the backend functions the DAL calls by name.

pub mod admin;
pub(crate) mod backend;
pub mod connection;
mod error;
#[cfg(feature = "sqlite")]
pub mod filesystem;
mod kind;
pub mod migrate;
mod pool;
pub mod schema;
mod session;
pub mod universal_types;
mod url;

pub use admin::{AdminError, DatabaseAdmin, TenantConfig, TenantCredentials};
pub(crate) use backend::{
    dispatch, listen_work, load_skip_locked, notify_work, on_inner, take_notifications, PACKAGES_CHANGED,
};
pub use connection::{AnyConnection, ConnectOptions};
pub use error::{Error, ErrorKind, Result};
pub use kind::{Backend, BackendFeature};
pub use pool::{Database, DatabaseConfig, PooledConnection};
pub use session::{analyze, checkpoint_wal, establish, read_snapshot, serialize_writes, write_transaction};
pub use universal_types::{JsonText, UniversalBool, UniversalJson, UniversalTimestamp, UniversalUuid};
pub use url::{redact, DatabaseUrl};

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("Cloacina needs at least one database backend: enable the `postgres` and/or `sqlite` Cargo feature.");
