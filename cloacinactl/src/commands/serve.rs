//! `cloacinactl serve`: the HTTP API (`cloacina-server`) over the target database until SIGINT or
//! SIGTERM. Binds to loopback by default; another address needs a token.

use std::net::SocketAddr;

use cloacina::{Database, DatabaseConfig};
use cloacina_server::{ServeError, ServerConfig};

use super::Target;

/// `serve` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Bearer token that requests changing something must carry (needed off loopback).
    #[arg(long, env = "CLOACINA_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub(crate) fn run(target: &Target, args: ServeArgs) -> anyhow::Result<()> {
    let token = args.token.filter(|t| !t.is_empty());
    cloacina_server::check_bind(args.bind, token.as_deref())?;
    target.existing_url()?; // a clear error for a missing or bad URL (or no such file) before anything starts
    let url = target.url.clone().unwrap_or_default();
    let config = DatabaseConfig { schema: target.schema.clone(), ..Default::default() };
    let db = Database::connect_with(&url, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let server = ServerConfig { token, ..Default::default() };
        match cloacina_server::serve(db, args.bind, server, cloacina_server::shutdown_signal()).await {
            Ok(()) => Ok(()),
            Err(e @ ServeError::Bind { .. }) => Err(anyhow::Error::new(e)),
            Err(e) => Err(e.into()),
        }
    })
}
