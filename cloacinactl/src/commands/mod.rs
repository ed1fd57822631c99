//! One module per command group; shared connection handling.

pub(crate) mod db;
pub(crate) mod output;
pub(crate) mod runs;
pub(crate) mod schedules;
pub(crate) mod serve;
pub(crate) mod workflows;

use cloacina::database::{establish, AnyConnection, ConnectOptions, DatabaseUrl};

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

    /// One connection (no pool: a CLI command does one thing and exits).
    pub(crate) fn connect(&self) -> anyhow::Result<(DatabaseUrl, AnyConnection)> {
        let url = self.url()?;
        let options = ConnectOptions { schema: self.schema.clone(), ..Default::default() };
        let conn = establish(&url, &options)?;
        Ok((url, conn))
    }

    /// A connection to a database that is fully migrated; otherwise an error saying what to run
    /// (these commands never migrate: that is `db migrate`'s job).
    pub(crate) fn connect_migrated(&self) -> anyhow::Result<AnyConnection> {
        let (url, mut conn) = self.connect()?;
        let status = cloacina::database::migrate::status(&mut conn)?;
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
