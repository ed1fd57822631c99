//! [`Database`]: a pool of [`AnyConnection`] with backend-specific setup per connection, and the
//! bridge that runs Diesel's blocking work off the async threads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::TransactionManager;
use diesel::Connection;

use super::{migrate, session, AnyConnection, Backend, ConnectOptions, DatabaseUrl, Error, Result};

/// A connection checked out of a [`Database`] pool; returned to it on drop.
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// How to open and pool connections. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Most connections the pool holds (default 10). In-memory SQLite always uses 1.
    pub pool_size: u32,
    /// How long to wait for a PostgreSQL server to accept a connection (default 10 s).
    pub connect_timeout: Duration,
    /// How long [`Database::get`] waits for a free pooled connection (default 30 s).
    pub acquire_timeout: Duration,
    /// How long a SQLite statement waits for another writer's lock (default 5 s).
    pub busy_timeout: Duration,
    /// PostgreSQL schema holding every table (created on first use); `None` for the default.
    pub schema: Option<String>,
    /// Apply pending migrations when connecting (default true).
    pub migrate: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            pool_size: 10,
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
            schema: None,
            migrate: true,
        }
    }
}

/// Opens connections for the pool: exactly the URL's backend, with its per-connection setup.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    options: ConnectOptions,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = Error;

    fn connect(&self) -> Result<AnyConnection> {
        session::establish(&self.url, &self.options)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<()> {
        use diesel::connection::SimpleConnection;
        conn.batch_execute("SELECT 1").map_err(Error::from)
    }

    /// A connection returned mid-transaction (a panic, a broken commit) is discarded, not reused.
    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        type Tm = <AnyConnection as Connection>::TransactionManager;
        std::thread::panicking()
            || Tm::is_broken_transaction_manager(conn)
            || !matches!(Tm::transaction_manager_status_mut(conn).transaction_depth(), Ok(None))
    }
}

/// A pooled database chosen by URL. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Database {
    url: DatabaseUrl,
    schema: Option<String>,
    pool: r2d2::Pool<Manager>,
    /// How the pool's connections are opened (for [`Database::dedicated_connection`]).
    options: ConnectOptions,
    /// The SQLite writer queue of this database's file (`None` on PostgreSQL), looked up once.
    queue: Option<super::backend::WriterQueue>,
    /// Keeps an in-memory SQLite database alive while the pool recycles its connection.
    _anchor: Option<Arc<Mutex<AnyConnection>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &self.url).field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl Database {
    /// Upstream Cloacina's constructor: a pool of at most `max_size` connections to
    /// `connection_string`. For PostgreSQL a non-empty `database_name` replaces the URL's
    /// database (upstream's semantics); SQLite ignores it. Pending migrations are applied.
    ///
    /// # Panics
    /// If the database cannot be opened (a bad URL, an unreachable server), as upstream's does;
    /// [`Database::try_new_with_schema`] and [`Database::connect_with`] return the error instead.
    /// Unlike upstream's, it connects at once, so the panic happens here and not at first use.
    pub fn new(connection_string: &str, database_name: &str, max_size: u32) -> Self {
        Self::new_with_schema(connection_string, database_name, max_size, None)
    }

    /// [`Database::new`] with the PostgreSQL schema `schema` holding the tables (upstream's name).
    ///
    /// # Panics
    /// If the database cannot be opened or the schema name is invalid.
    pub fn new_with_schema(connection_string: &str, database_name: &str, max_size: u32, schema: Option<&str>) -> Self {
        match Self::try_new_with_schema(connection_string, database_name, max_size, schema) {
            Ok(db) => db,
            Err(e) => panic!("Failed to create database connection pool: {e}"),
        }
    }

    /// [`Database::new_with_schema`] returning the error instead of panicking.
    pub fn try_new_with_schema(
        connection_string: &str,
        database_name: &str,
        max_size: u32,
        schema: Option<&str>,
    ) -> Result<Self> {
        let url = DatabaseUrl::parse(connection_string)?;
        let url = if url.backend() == Backend::Postgres && !database_name.is_empty() {
            with_database_name(connection_string, database_name)
        } else {
            connection_string.to_owned()
        };
        let config = DatabaseConfig { pool_size: max_size, schema: schema.map(str::to_owned), ..Default::default() };
        Self::connect_with(&url, config)
    }

    /// Connects with [`DatabaseConfig::default`] and applies pending migrations.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DatabaseConfig::default())
    }

    /// Connects, applies pending migrations unless `config.migrate` is false, and builds the pool.
    ///
    /// Blocking: call it from a blocking context (or `spawn_blocking`) in async code. The first
    /// connection is opened here, so a bad URL, a refused connection or a failed authentication
    /// is reported at once with the driver's own reason.
    pub fn connect_with(url: &str, config: DatabaseConfig) -> Result<Self> {
        let url = DatabaseUrl::parse(url)?;
        let options = ConnectOptions {
            connect_timeout: config.connect_timeout,
            busy_timeout: config.busy_timeout,
            schema: config.schema.clone(),
        };
        let mut first = session::establish(&url, &options)?;
        let queue = session::writer_queue_of(&mut first)?;
        if config.migrate {
            let applied = migrate::run_pending(&mut first, config.schema.as_deref())?;
            for step in &applied {
                tracing::info!(database = %url, version = %step.version, took_ms = step.took.as_millis(), "applied migration");
            }
        }
        let in_memory = url.is_in_memory();
        let mut builder = r2d2::Pool::builder()
            .max_size(if in_memory { 1 } else { config.pool_size.max(1) })
            .min_idle(Some(if in_memory { 1 } else { 2.min(config.pool_size) }))
            .connection_timeout(config.acquire_timeout)
            .test_on_check_out(false);
        if in_memory {
            builder = builder.idle_timeout(None).max_lifetime(None);
        }
        let pool = builder.build_unchecked(Manager { url: url.clone(), options: options.clone() });
        let anchor = in_memory.then(|| Arc::new(Mutex::new(first)));
        Ok(Self { url, schema: config.schema, pool, options, queue, _anchor: anchor })
    }

    /// A connection of its own, outside the pool and set up like the pool's, for a session that
    /// must stay open (a `LISTEN`). Blocking.
    pub(crate) fn dedicated_connection(&self) -> Result<AnyConnection> {
        session::establish(&self.url, &self.options)
    }

    /// The backend this database runs on.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// The database URL (its `Display` and `Debug` hide the password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The PostgreSQL schema in use, if one was configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Checks a connection out of the pool, blocking up to the acquire timeout.
    pub fn get(&self) -> Result<PooledConnection> {
        self.pool.get().map_err(|e| Error::Pool(e.to_string()))
    }

    /// Runs blocking Diesel work `f` on a pooled connection, on Tokio's blocking threads.
    ///
    /// The connection is never held across an `.await`: `f` is synchronous.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_with(f).await
    }

    /// [`Database::run`] for work whose errors are not the database layer's own (an engine step
    /// that also decodes contexts, say): `f`'s error type is kept, and pool failures convert into it.
    pub async fn run_with<T, E, F>(&self, f: F) -> std::result::Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> std::result::Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let (pool, queue) = (self.pool.clone(), self.queue.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| Error::Pool(e.to_string()))?;
            session::with_writer_queue(queue, || f(&mut conn))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}

/// `url` (a PostgreSQL URL) with its database, the path after the authority, replaced by `name`;
/// the query string is kept.
fn with_database_name(url: &str, name: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (before_query, query) = rest.find('?').map_or((rest, ""), |i| rest.split_at(i));
    let authority = before_query.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn upstreams_database_name_replaces_the_urls_database() {
        use crate::database::pool::with_database_name as w;
        assert_eq!(w("postgres://u:p@h:5432/old", "new"), "postgres://u:p@h:5432/new");
        assert_eq!(w("postgresql://h", "new"), "postgresql://h/new");
        assert_eq!(w("postgres://h/old?sslmode=require", "new"), "postgres://h/new?sslmode=require");
        assert_eq!(w("postgres:///old?host=/run/pg", "new"), "postgres:///new?host=/run/pg");
    }
}
