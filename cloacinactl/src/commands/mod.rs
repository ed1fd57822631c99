//! One module per command group; shared connection handling.

pub(crate) mod daemon;
pub(crate) mod db;
pub(crate) mod output;
pub(crate) mod package;
pub(crate) mod remote;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod serve;
pub(crate) mod workflows;

use cloacina::database::{establish, AnyConnection, ConnectOptions, DatabaseUrl};

/// The time now: the one place the CLI reads the clock (the same `Clock` the server and the
/// runners read).
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    use cloacina::clock::Clock;
    cloacina::clock::SystemClock.now()
}

/// Which database a command works on.
pub(crate) struct Target {
    pub(crate) url: Option<String>,
    pub(crate) schema: Option<String>,
}

impl Target {
    /// The parsed URL, or a one-line error saying how to give one.
    pub(crate) fn url(&self) -> anyhow::Result<DatabaseUrl> {
        let raw = self.url.as_deref().ok_or_else(|| {
            output::fail(output::Failure::BadInput, "no database URL: pass --database-url or set DATABASE_URL")
        })?;
        Ok(DatabaseUrl::parse(raw)?)
    }

    /// One connection (no pool: a CLI command does one thing and exits) to a database that
    /// exists: a SQLite path with no file behind it is refused, not created empty (a mistyped
    /// path must not leave a new file behind). Only `db migrate` creates databases.
    pub(crate) fn connect(&self) -> anyhow::Result<(DatabaseUrl, AnyConnection)> {
        self.open(self.existing_url()?)
    }

    /// The parsed URL of a database that exists (see [`Target::connect`]).
    pub(crate) fn existing_url(&self) -> anyhow::Result<DatabaseUrl> {
        let url = self.url()?;
        if let Some(file) = url.sqlite_file().filter(|f| !f.exists()) {
            return Err(output::fail(
                output::Failure::NotFound,
                format!(
                    "no SQLite database at {}: check the path (`cloacinactl db migrate` creates a new one)",
                    file.display()
                ),
            ));
        }
        Ok(url)
    }

    /// One connection, creating a SQLite file that does not exist yet (for `db migrate`).
    pub(crate) fn connect_or_create(&self) -> anyhow::Result<(DatabaseUrl, AnyConnection)> {
        self.open(self.url()?)
    }

    fn open(&self, url: DatabaseUrl) -> anyhow::Result<(DatabaseUrl, AnyConnection)> {
        let options = ConnectOptions { schema: self.schema.clone(), ..Default::default() };
        let conn = establish(&url, &options)?;
        Ok((url, conn))
    }

    /// A connection to a database that is fully migrated; otherwise an error saying what to run
    /// (these commands never migrate: that is `db migrate`'s job).
    pub(crate) fn connect_migrated(&self) -> anyhow::Result<AnyConnection> {
        let (url, mut conn) = self.connect()?;
        let status = cloacina::ops::database::status(&mut conn, false)?;
        if status.applied.is_empty() {
            anyhow::bail!(
                "{url} holds no Cloacina tables{}: start a runner or run `cloacinactl db migrate`",
                self.in_schema()
            );
        }
        if !status.pending.is_empty() {
            anyhow::bail!(
                "{url}{} has {} pending migration(s): run `cloacinactl db migrate`",
                self.in_schema(),
                status.pending.len()
            );
        }
        Ok(conn)
    }

    fn in_schema(&self) -> String {
        self.schema.as_ref().map(|s| format!(" (schema `{s}`)")).unwrap_or_default()
    }
}
