//! Cloacina's HTTP API over a Cloacina database (SQLite or PostgreSQL, by URL; a tenant schema
//! too): [`router`] builds an axum `Router` an application can mount under its own path, and
//! [`serve`] runs it standalone (`cloacinactl serve`).
//!
//! - `GET /`: the web dashboard (runs with filters and live refresh, a run's task graph with
//!   statuses, attempts, errors and contexts, schedules, workflows, and the actions), its assets
//!   compiled in.
//! - `GET /metrics`: Prometheus text (the application's recorder, then gauges read from the
//!   database).
//! - `GET /healthz` (the process answers) and `GET /readyz` (the database is reachable and
//!   migrated to this version).
//! - The JSON API under `/api/v1`, described by `/api/v1/openapi.json`: runs (list with filters and
//!   keyset pagination, detail, start, retry, cancel, pause, resume), workflows, cron schedules.
//!   Errors are `{"error": {"code": "…", "message": "…"}}` with a 4xx status for anything the
//!   caller can fix.
//!
//! Security (see the README's "Security" section for what is and is not protected):
//! [`ServerConfig::check`] refuses a non-loopback address without a token and a token no client
//! could send. Every request must name this server by an IP address, `localhost` or a name in
//! [`ServerConfig::allowed_hosts`] (against DNS rebinding); every response carries a strict
//! Content-Security-Policy and refuses framing. With a token, every request that changes
//! something needs `Authorization: Bearer <token>` (compared as SHA-256 digests; failures are
//! logged and limited per client address); GET requests need none. Changes from a browser page
//! of another origin are refused. [`Limits`] bound connections, requests in flight and the time a
//! request may take to arrive. No response shows a database password.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use axum::Router;
use cloacina::Database;

mod api;
mod dashboard;
mod error;
mod events;
mod guard;
mod ids;
mod limits;
mod listen;
mod metrics;
mod packages;

pub use error::ApiError;
pub use limits::Limits;

/// Server settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// Bearer token that requests changing something must carry (`None`: no token; then the
    /// server must bind to loopback only, see [`ServerConfig::check`]). 16 to 1024 visible ASCII
    /// characters.
    pub token: Option<String>,
    /// Host names (beside IP addresses and `localhost`) that requests may name in their `Host`
    /// header: the names clients use to reach the server, a load balancer's included. `"*"`
    /// allows any name (only behind a proxy that checks `Host` itself).
    pub allowed_hosts: Vec<String>,
    /// Largest request body accepted (default 1 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Largest package archive `POST /api/v1/packages` accepts (default 64 MiB); larger ones get
    /// 413 before they are read whole.
    pub max_package_bytes: usize,
    /// Checks uploaded archives (its limits bound what one may expand to).
    pub loader: cloacina::packages::Loader,
    /// Whether the JSON API and the dashboard are served (`serve --mode api` and `all`); without
    /// them only `/healthz`, `/readyz` and `/metrics` answer (`--mode worker`).
    pub api: bool,
    /// Connection, request and timing limits.
    pub limits: Limits,
    /// The clock the server reads "now" from (the runs' waiting reasons, liveness, schedules'
    /// next fire times): the system clock unless a test or an embedding application sets the
    /// one its runners read.
    pub clock: Arc<dyn cloacina::clock::Clock>,
    /// Renders the process's own metrics at the top of `/metrics` (for an application that runs
    /// runners and installed a recorder: `Arc::new(move || handle.render())` with
    /// `metrics-exporter-prometheus`). `None`: only the gauges read from the database.
    pub render_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    /// Called after an upload or a deletion was recorded, so a worker in this process looks at
    /// once (`serve --mode all`: `DefaultRunner::packages_waker`); workers in other processes hear
    /// PostgreSQL's announcement, or poll on SQLite.
    pub packages_changed: Option<Arc<dyn Fn() + Send + Sync>>,
    /// `Some`: uploads must be signed by one of these keys (`serve --require-signed
    /// --trusted-key FILE`): the signature file's text comes in the `X-Cloacina-Signature`
    /// header and is checked before the archive is opened.
    pub trusted_keys: Option<Vec<cloacina::packages::signing::PublicKey>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            token: None,
            allowed_hosts: Vec::new(),
            max_body_bytes: 1 << 20,
            max_package_bytes: DEFAULT_MAX_PACKAGE_BYTES,
            loader: cloacina::packages::Loader::from_env(),
            api: true,
            limits: Limits::default(),
            clock: Arc::new(cloacina::clock::SystemClock),
            render_metrics: None,
            packages_changed: None,
            trusted_keys: None,
        }
    }
}

impl ServerConfig {
    /// Wakes a worker in this process, if there is one to wake.
    pub(crate) fn tell_packages_changed(&self) {
        if let Some(wake) = &self.packages_changed {
            wake();
        }
    }
}

/// The token is never printed.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_package_bytes", &self.max_package_bytes)
            .field("loader", &self.loader)
            .field("api", &self.api)
            .field("limits", &self.limits)
            .field("clock", &self.clock)
            .field("render_metrics", &self.render_metrics.is_some())
            .field("packages_changed", &self.packages_changed.is_some())
            .field("trusted_keys", &self.trusted_keys)
            .finish()
    }
}

impl ServerConfig {
    /// Refuses settings the server cannot work with on `addr`: a non-loopback address without a
    /// token, a token no client can send (empty, blank, non-ASCII, with spaces or control
    /// characters) or too short to resist guessing, and limits of zero.
    pub fn check(&self, addr: SocketAddr) -> Result<(), ServeError> {
        if let Some(token) = &self.token {
            if let Some(reason) = token_problem(token) {
                return Err(ServeError::BadToken(reason));
            }
        }
        if let Some(reason) = self.limits.problem() {
            return Err(ServeError::BadLimits(reason));
        }
        check_bind(addr, self.token.as_deref())
    }
}

/// Default largest package archive an upload may send: 64 MiB.
pub const DEFAULT_MAX_PACKAGE_BYTES: usize = 64 << 20;

/// Shortest token accepted.
const MIN_TOKEN: usize = 16;

/// Why `token` cannot serve as a bearer token, if it cannot.
fn token_problem(token: &str) -> Option<&'static str> {
    if token.trim().is_empty() {
        Some("the token is empty or blank; no client could send it")
    } else if !token.chars().all(|c| c.is_ascii_graphic()) {
        Some("the token holds spaces, control or non-ASCII characters, which an Authorization header cannot carry intact; use visible ASCII, e.g. `openssl rand -hex 32`")
    } else if token.len() < MIN_TOKEN {
        Some("the token is shorter than 16 characters, too easy to guess; generate one with `openssl rand -hex 32`")
    } else if token.len() > 1024 {
        Some("the token is longer than 1024 characters")
    } else {
        None
    }
}

/// What handlers share.
pub(crate) struct AppState {
    pub(crate) db: Database,
    pub(crate) config: ServerConfig,
    /// The SHA-256 of the token, when there is one.
    pub(crate) token_digest: Option<[u8; 32]>,
    pub(crate) auth_failures: guard::AuthFailures,
    pub(crate) in_flight: Arc<tokio::sync::Semaphore>,
    pub(crate) throttles: limits::Throttles,
    /// The OpenAPI document, generated from the routes.
    pub(crate) openapi: String,
    /// Event streams that may be open at once.
    pub(crate) event_streams: Arc<tokio::sync::Semaphore>,
    /// Set when the server stops: event streams end.
    pub(crate) closing: tokio::sync::watch::Sender<bool>,
}

/// The API over `db`: mount it (`Router::nest("/cloacina", router(db, config))`) or [`serve`] it.
///
/// Mounted in an application, the client's address for the failed-authentication limit comes
/// from axum's `ConnectInfo<SocketAddr>` (`into_make_service_with_connect_info`); without it,
/// failures are logged but not limited. Connection limits and header timeouts are the
/// application server's; [`serve`] sets them from [`ServerConfig::limits`].
pub fn router(db: Database, config: ServerConfig) -> Router {
    build(db, config).0
}

/// [`router`] and the state its handlers share (which [`serve_on`] tells when it stops).
fn build(db: Database, config: ServerConfig) -> (Router, Arc<AppState>) {
    let limit = config.max_body_bytes.max(config.max_package_bytes);
    let serve_api = config.api;
    let (api, mut doc) = api::routes().split_for_parts();
    api::finish(&mut doc);
    let state = Arc::new(AppState {
        db,
        token_digest: config.token.as_deref().map(guard::digest),
        auth_failures: guard::AuthFailures::new(config.limits.auth_failures_per_minute),
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight)),
        throttles: limits::Throttles::new(),
        event_streams: Arc::new(tokio::sync::Semaphore::new(config.limits.max_event_streams)),
        closing: tokio::sync::watch::channel(false).0,
        openapi: doc.to_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        config,
    });
    let app = if serve_api {
        Router::new()
            .route("/", get(dashboard::index))
            .route("/assets/app.js", get(dashboard::script))
            .route("/assets/app.css", get(dashboard::style))
            .merge(api)
    } else {
        api::health_routes().split_for_parts().0
    };
    let router = app
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(state.clone(), limits::read_body))
        .layer(from_fn_with_state(state.clone(), guard::writes))
        .layer(from_fn_with_state(state.clone(), limits::in_flight))
        .layer(from_fn_with_state(state.clone(), guard::hosts))
        .layer(from_fn(error::json_errors))
        .layer(from_fn(guard::security_headers))
        .with_state(state.clone());
    (router, state)
}

/// Why the server did not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without a token: anyone who can reach it could change runs.
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could start and cancel runs; \
         set --token (or CLOACINA_TOKEN), or bind to 127.0.0.1"
    )]
    NoTokenOffLoopback(SocketAddr),
    /// The token cannot work (the reason says why; the token itself is never shown).
    #[error("unusable token: {0}")]
    BadToken(&'static str),
    /// A limit of zero or out of range.
    #[error("unusable limits: {0}")]
    BadLimits(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Refuses to listen on a non-loopback `addr` without a token.
pub fn check_bind(addr: SocketAddr, token: Option<&str>) -> Result<(), ServeError> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(ServeError::NoTokenOffLoopback(addr))
    }
}

/// Serves [`router`] on `addr` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    db: Database,
    addr: SocketAddr,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.check(addr)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, db, config, shutdown).await
}

/// [`serve`] on a listener the caller bound (checked the same way).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    db: Database,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let bound = listener.local_addr().map_err(ServeError::Serve)?;
    config.check(bound)?;
    tracing::info!(address = %bound, database = %db.url(), "serving the Cloacina API");
    let limits = config.limits.clone();
    let (app, state) = build(db, config);
    // Stopping ends the event streams first, so the graceful stop does not wait on them.
    let shutdown = async move {
        shutdown.await;
        state.closing.send_replace(true);
    };
    listen::serve(listener, app, &limits, Arc::new(limits::Throttle::new()), shutdown).await.map_err(ServeError::Serve)
}

/// Completes on SIGINT or SIGTERM (Ctrl-C only where there are no Unix signals).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: finishing requests in flight");
}
