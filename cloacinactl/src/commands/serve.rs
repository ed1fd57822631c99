//! `cloacinactl serve`: the HTTP API and dashboard (`cloacina-server`) over the target database
//! and, by default, a worker that runs the packages uploaded to it, until SIGINT or SIGTERM.
//! `--mode api` serves without running anything, `--mode worker` runs packages and answers only
//! `/healthz`, `/readyz` and `/metrics`. Binds to loopback by default; another address needs a
//! token.

use std::net::SocketAddr;
use std::time::Duration;

use cloacina::{Database, DatabaseConfig};
use cloacina_server::{Limits, ServeError, ServerConfig};

use super::daemon::WorkerArgs;
use super::Target;

/// What a `serve` process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    /// The API, the dashboard and a worker.
    All,
    /// The API and the dashboard only.
    Api,
    /// A worker only (HTTP: /healthz, /readyz, /metrics).
    Worker,
}

/// `serve` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// `all` (API, dashboard and a worker running the uploaded packages), `api` or `worker`.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Bytes a package upload may send (`POST /api/v1/packages`).
    #[arg(long, default_value_t = cloacina_server::DEFAULT_MAX_PACKAGE_BYTES)]
    max_package_bytes: usize,
    /// Accept only uploads signed by a `--trusted-key` (the signature in the
    /// X-Cloacina-Signature header; `cloacinactl package upload` sends ARCHIVE.sig).
    #[arg(long)]
    require_signed: bool,
    /// A public key file (`cloacinactl signing-key generate` writes KEY.pub) whose signatures
    /// `--require-signed` accepts; repeatable.
    #[arg(long, value_name = "FILE")]
    trusted_key: Vec<std::path::PathBuf>,
    #[command(flatten)]
    worker: WorkerArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Bearer token that requests changing something must carry (needed off loopback): 16 to 1024
    /// visible ASCII characters, e.g. from `openssl rand -hex 32`.
    #[arg(long, env = "CLOACINA_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A host name clients reach the server by (beside IP addresses and localhost), checked
    /// against each request's Host header; repeatable, or comma-separated in the variable.
    #[arg(long = "allowed-host", env = "CLOACINA_ALLOWED_HOSTS", value_delimiter = ',')]
    allowed_hosts: Vec<String>,
    /// Open connections at most; more are closed at once.
    #[arg(long, default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Open connections one client address may hold; raise it behind a proxy.
    #[arg(long, default_value_t = Limits::default().max_connections_per_client)]
    max_connections_per_client: usize,
    /// Requests handled at once at most; more get 503 (health checks are not counted).
    #[arg(long, default_value_t = Limits::default().max_in_flight)]
    max_in_flight: usize,
    /// Seconds a connection has to send a request's headers (also the idle keep-alive timeout).
    #[arg(long, default_value_t = Limits::default().header_timeout.as_secs_f64())]
    header_timeout: f64,
    /// Seconds a request has to send its whole body.
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs_f64())]
    body_timeout: f64,
    /// Failed authentications one client address may make per minute before its requests that
    /// need the token get 429 for the rest of the minute.
    #[arg(long, default_value_t = Limits::default().auth_failures_per_minute)]
    auth_failures_per_minute: u32,
    /// Event streams (`/api/v1/events`) open at once; more get 503.
    #[arg(long, default_value_t = Limits::default().max_event_streams)]
    max_event_streams: usize,
}

/// Seconds from the command line as a duration; out-of-range values are refused by the server's
/// own check.
fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// The keys uploads must be signed by, when `--require-signed`: each file read and checked now,
/// so a bad one is one clear line before anything starts.
fn trusted_keys(args: &ServeArgs) -> anyhow::Result<Option<Vec<cloacina::packages::signing::PublicKey>>> {
    use super::output::{fail, Failure};
    match (args.require_signed, args.trusted_key.is_empty()) {
        (false, true) => Ok(None),
        (false, false) => Err(fail(Failure::BadInput, "--trusted-key is given without --require-signed")),
        (true, true) => Err(fail(Failure::BadInput, "--require-signed needs at least one --trusted-key FILE")),
        (true, false) => args
            .trusted_key
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| fail(Failure::BadInput, format!("cannot read {}: {e}", path.display())))?;
                cloacina::packages::signing::PublicKey::parse(&text)
                    .map_err(|e| fail(Failure::BadInput, format!("{}: {e}", path.display())))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Some),
    }
}

pub(crate) fn run(target: &Target, args: ServeArgs) -> anyhow::Result<()> {
    let trusted_keys = trusted_keys(&args)?;
    let mut server = ServerConfig {
        token: args.token.filter(|t| !t.is_empty()),
        allowed_hosts: args.allowed_hosts.into_iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect(),
        limits: Limits {
            max_connections: args.max_connections,
            max_connections_per_client: args.max_connections_per_client,
            max_in_flight: args.max_in_flight,
            header_timeout: seconds(args.header_timeout),
            body_timeout: seconds(args.body_timeout),
            auth_failures_per_minute: args.auth_failures_per_minute,
            max_event_streams: args.max_event_streams,
        },
        max_package_bytes: args.max_package_bytes,
        trusted_keys,
        loader: args.worker.loader(),
        api: args.mode != Mode::Worker,
        ..Default::default()
    };
    server.check(args.bind)?; // a bad token or bind is one clear line before anything starts
    target.existing_url()?; // a clear error for a missing or bad URL (or no such file) before anything starts
    let url = target.url.clone().unwrap_or_default();
    let config = DatabaseConfig { schema: target.schema.clone(), ..Default::default() };
    let db = Database::connect_with(&url, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let stop = std::sync::Arc::new(stop);
        let signalled = stop.clone();
        tokio::spawn(async move {
            cloacina_server::shutdown_signal().await;
            let _ = signalled.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut daemon = match args.mode {
            Mode::Api => None,
            Mode::All | Mode::Worker => {
                Some(args.worker.start(&url, target.schema.clone(), Vec::new()).await?.follow_stored(true))
            }
        };
        if let Some(daemon) = daemon.as_ref() {
            // The worker in this process hears of uploads at once, on SQLite too.
            let waker = daemon.runner().packages_waker();
            server.packages_changed = Some(std::sync::Arc::new(move || waker.wake()));
        }
        let interval = args.worker.interval();
        let work = async {
            if let Some(daemon) = daemon.as_mut() {
                daemon.watch(interval, stopped(stopping.clone())).await;
            }
        };
        // A server that stops (or cannot start) stops the worker too.
        let serve = async {
            let served = cloacina_server::serve(db, args.bind, server, stopped(stopping.clone())).await;
            let _ = stop.send(true);
            served
        };
        let (served, ()) = tokio::join!(serve, work);
        if let Some(mut daemon) = daemon {
            daemon.shutdown().await?;
        }
        match served {
            Ok(()) => Ok(()),
            Err(e @ ServeError::Bind { .. }) => Err(anyhow::Error::new(e)),
            Err(e) => Err(e.into()),
        }
    })
}
