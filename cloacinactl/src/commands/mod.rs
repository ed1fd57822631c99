//! One module per command group; shared connection handling.

pub(crate) mod db;

use anyhow::Context as _;
use cloacina::database::{establish, AnyConnection, ConnectOptions, DatabaseUrl};

/// Which database a command works on.
pub(crate) struct Target {
    pub(crate) url: Option<String>,
    pub(crate) schema: Option<String>,
}

impl Target {
    /// The parsed URL, or a one-line error saying how to give one.
    pub(crate) fn url(&self) -> anyhow::Result<DatabaseUrl> {
        let raw = self.url.as_deref().context("no database URL: pass --database-url or set DATABASE_URL")?;
        Ok(DatabaseUrl::parse(raw)?)
    }

    /// One connection (no pool: a CLI command does one thing and exits).
    pub(crate) fn connect(&self) -> anyhow::Result<(DatabaseUrl, AnyConnection)> {
        let url = self.url()?;
        let options = ConnectOptions { schema: self.schema.clone(), ..Default::default() };
        let conn = establish(&url, &options)?;
        Ok((url, conn))
    }
}
