//! What one client cannot take from the others: [`Limits`] on connections, requests in flight,
//! and the time a request may take to arrive, and [`Throttle`]d warnings when a limit is hit
//! (one line per limit per ten seconds, with the count since the last).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::{ApiError, AppState};

/// Limits that keep one slow or greedy client from stalling the server. Every field has a
/// default sized for one operator's API on a small machine; `cloacinactl serve` has a flag for
/// each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most (default 1024); a connection over the limit is closed at once.
    /// Keep it under the process's file descriptor limit.
    pub max_connections: usize,
    /// Open connections one client address may hold at most (default 128), so one client
    /// cannot take every connection; raise it behind a proxy, whose address every connection
    /// then has.
    pub max_connections_per_client: usize,
    /// Requests being handled at once at most (default 256); more get 503 at once. `/healthz`
    /// and `/readyz` do not count and always answer.
    pub max_in_flight: usize,
    /// Time a connection has to send a request's headers (default 10 s). It also bounds an idle
    /// keep-alive connection: waiting for the next request is waiting for its headers.
    pub header_timeout: Duration,
    /// Time a request has to send its whole body (default 30 s); a slower one gets 408 and its
    /// connection is closed.
    pub body_timeout: Duration,
    /// Failed authentications one client address may make per minute (default 10); further
    /// requests from it that need the token get 429 until the minute ends.
    pub auth_failures_per_minute: u32,
    /// Event streams (`/api/v1/events`, `/api/v1/runs/{id}/events`) open at once at most
    /// (default 64); more get 503. They do not count against `max_in_flight`; each reads the
    /// database four times a second.
    pub max_event_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_client: 128,
            max_in_flight: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            auth_failures_per_minute: 10,
            max_event_streams: 64,
        }
    }
}

impl Limits {
    /// Why these limits cannot work, if they cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        let positive_duration = |d: Duration| !d.is_zero() && d <= Duration::from_secs(3600);
        if self.max_connections == 0
            || self.max_connections_per_client == 0
            || self.max_in_flight == 0
            || self.auth_failures_per_minute == 0
            || self.max_event_streams == 0
        {
            return Some(
                "connection, request, event-stream and authentication-failure limits must be at least 1".to_owned(),
            );
        }
        if !positive_duration(self.header_timeout) || !positive_duration(self.body_timeout) {
            return Some("the header and body timeouts must be between 1 ms and 1 hour".to_owned());
        }
        None
    }
}

/// A warning logged at most once per ten seconds, with how often it was suppressed meanwhile.
pub(crate) struct Throttle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    const EVERY: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Self {
        Self { last: Mutex::new(None), suppressed: AtomicU64::new(0) }
    }

    pub(crate) fn warn(&self, what: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < Self::EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        match self.suppressed.swap(0, Ordering::Relaxed) {
            0 => tracing::warn!("{what}"),
            n => tracing::warn!("{what} (and {n} more like it in the last 10 s)"),
        }
    }
}

/// The warnings the server throttles, one per limit.
pub(crate) struct Throttles {
    pub(crate) in_flight: Throttle,
    pub(crate) body: Throttle,
    pub(crate) auth: Throttle,
    pub(crate) host: Throttle,
}

impl Throttles {
    pub(crate) fn new() -> Self {
        Self { in_flight: Throttle::new(), body: Throttle::new(), auth: Throttle::new(), host: Throttle::new() }
    }
}

/// Requests that may run at once; over [`Limits::max_in_flight`], 503 with `Retry-After`.
/// Health checks are not counted, so a saturated API still answers them.
pub(crate) async fn in_flight(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    // Health checks always answer; event streams are bounded by their own limit.
    let path = request.uri().path();
    if matches!(path, "/healthz" | "/readyz") || (path.starts_with("/api/v1/") && path.ends_with("/events")) {
        return next.run(request).await;
    }
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.throttles.in_flight.warn(format_args!(
            "request limit reached ({} in flight): answering 503",
            state.config.limits.max_in_flight
        ));
        let mut response =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is handling too many requests; retry")
                .into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}

/// Reads a request's whole body before the handler runs, within [`Limits::body_timeout`] and the
/// body limit: a body declared or sent over the limit is 413 before it is read whole, one that
/// does not arrive in time is 408, and either closes the connection.
pub(crate) async fn read_body(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    // No route reads the body of another method: such a body is never waited for.
    if !matches!(*request.method(), axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH) {
        return next.run(request).await;
    }
    let uploading = request.method() == axum::http::Method::POST && request.uri().path() == "/api/v1/packages";
    let limit = if uploading { state.config.max_package_bytes } else { state.config.max_body_bytes };
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared == Some(0) {
        return next.run(request).await;
    }
    let too_large = || {
        closing(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the server's limit of {limit} bytes"),
        ))
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let read = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, limit));
    match tokio::time::timeout(state.config.limits.body_timeout, read).await {
        Ok(Ok(collected)) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => too_large(),
        Ok(Err(e)) => closing(ApiError::bad_request(format!("the request body could not be read: {e}"))),
        Err(_) => {
            state.throttles.body.warn(format_args!(
                "a request body did not arrive within {:?}: answering 408",
                state.config.limits.body_timeout
            ));
            closing(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the request body did not arrive within {:?}", state.config.limits.body_timeout),
            ))
        }
    }
}

/// An error response that also closes the connection (its request's body was not read to its end).
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
