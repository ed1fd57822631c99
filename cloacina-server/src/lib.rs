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
//! Security: [`check_bind`] refuses a non-loopback address without a token. With a token, every
//! request that changes something needs `Authorization: Bearer <token>`. Changes from a browser
//! page of another origin are refused (the `Origin` header must name this server), so a page on
//! another site cannot act through a user's browser. No response shows a database password.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use cloacina::Database;

mod api;
mod auth;
mod dashboard;
mod error;
mod metrics;

pub use error::ApiError;

/// Server settings.
#[derive(Clone)]
pub struct ServerConfig {
    /// Bearer token that requests changing something must carry (`None`: no token; then the
    /// server must bind to loopback only, see [`check_bind`]).
    pub token: Option<String>,
    /// Largest request body accepted (default 1 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Renders the process's own metrics at the top of `/metrics` (for an application that runs
    /// runners and installed a recorder: `Arc::new(move || handle.render())` with
    /// `metrics-exporter-prometheus`). `None`: only the gauges read from the database.
    pub render_metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self { token: None, max_body_bytes: 1 << 20, render_metrics: None }
    }
}

/// The token is never printed.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("render_metrics", &self.render_metrics.is_some())
            .finish()
    }
}

/// What handlers share.
pub(crate) struct AppState {
    pub(crate) db: Database,
    pub(crate) config: ServerConfig,
}

/// The API over `db`: mount it (`Router::nest("/cloacina", router(db, config))`) or [`serve`] it.
pub fn router(db: Database, config: ServerConfig) -> Router {
    let limit = config.max_body_bytes;
    let state = Arc::new(AppState { db, config });
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/app.css", get(dashboard::style))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(metrics::scrape))
        .nest("/api/v1", api::routes())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
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
    check_bind(addr, config.token.as_deref())?;
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
    check_bind(bound, config.token.as_deref())?;
    tracing::info!(address = %bound, database = %db.url(), "serving the Cloacina API");
    axum::serve(listener, router(db, config)).with_graceful_shutdown(shutdown).await.map_err(ServeError::Serve)
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
