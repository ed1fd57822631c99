//! What stands in front of every route: the `Host` check (against DNS rebinding), the security
//! headers every response carries, and, for requests that change something (any method but GET,
//! HEAD and OPTIONS), the same-origin check and the bearer token, with failed attempts logged and
//! limited per client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::{ApiError, AppState};

/// Sent with every response. The dashboard needs nothing but its own origin: no inline script or
/// style, no frames, no other site.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; \
         object-src 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to every response, errors and the dashboard included.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The host name a request names (`Host` header, lowercased, without port or trailing dot), if
/// it has one.
fn host_name(request: &Request) -> Option<String> {
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        },
    };
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

/// True when a browser page could only reach this server under `name` by being served from it:
/// an IP address, `localhost` (and its subdomains, which browsers resolve to loopback without
/// DNS), or a name the operator allowed. A DNS name that is none of these may be an attacker's
/// name rebound to this server's address.
fn host_allowed(name: &str, allowed: &[String]) -> bool {
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(name))
}

/// Refuses a request whose `Host` names this server by a name it was not told about (421).
pub(crate) async fn hosts(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(name) = host_name(&request) {
        if !host_allowed(&name, &state.config.allowed_hosts) {
            let shown: String = name.chars().take(100).collect();
            state.throttles.host.warn(format_args!("refused a request for host `{shown}`"));
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                format!(
                    "this server does not answer to the host name `{shown}`; an operator can allow it with \
                     --allowed-host {shown}"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Requests that change something: same origin when a browser says where it comes from, and the
/// token when the server has one.
pub(crate) async fn writes(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let same = origin.to_str().ok().and_then(|o| o.split_once("://")).is_some_and(|(_, rest)| rest == host);
        if !same {
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "cross-origin requests may not change anything")
                .into_response();
        }
    }
    let Some(expected) = state.token_digest else { return next.run(request).await };
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let failures = &state.auth_failures;
    if client.is_some_and(|ip| failures.blocked(ip, Instant::now())) {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many failed authentication attempts from this address; wait a minute",
        )
        .into_response();
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_digest(&digest(given), &expected) {
        let who = client.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
        state.throttles.auth.warn(format_args!(
            "authentication failed: {} {} from {who}",
            request.method(),
            request.uri().path()
        ));
        if let Some(ip) = client {
            failures.record(ip, Instant::now());
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this request changes something: send Authorization: Bearer <token>",
        )
        .into_response();
    }
    next.run(request).await
}

/// The SHA-256 of a token: tokens are compared as digests, so the time a comparison takes says
/// nothing about the token's length or where a guess went wrong.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in time independent of their contents.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failed authentication attempts per client address in the current minute; an address with too
/// many is refused (429) until its minute ends. Bounded: at most [`AuthFailures::MAX_ADDRESSES`]
/// addresses are tracked, finished minutes are forgotten first.
pub(crate) struct AuthFailures {
    per_minute: u32,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl AuthFailures {
    const WINDOW: Duration = Duration::from_secs(60);
    const MAX_ADDRESSES: usize = 4096;

    pub(crate) fn new(per_minute: u32) -> Self {
        Self { per_minute, seen: Mutex::new(HashMap::new()) }
    }

    fn blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.get(&ip).is_some_and(|(since, n)| now.duration_since(*since) < Self::WINDOW && *n >= self.per_minute)
    }

    fn record(&self, ip: IpAddr, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= Self::MAX_ADDRESSES && !seen.contains_key(&ip) {
            seen.retain(|_, (since, _)| now.duration_since(*since) < Self::WINDOW);
            if seen.len() >= Self::MAX_ADDRESSES {
                seen.clear(); // a flood of addresses: forget them all rather than grow
            }
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Self::WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_whole() {
        assert!(same_digest(&digest("abc"), &digest("abc")));
        assert!(!same_digest(&digest("abc"), &digest("abd")));
        assert!(!same_digest(&digest("abc"), &digest("abcd")));
        assert!(!same_digest(&digest(""), &digest("x")));
    }

    #[test]
    fn only_addresses_localhost_and_allowed_names_pass() {
        let allowed = vec!["cloacina.example.com".to_owned()];
        for ok in ["127.0.0.1", "10.1.2.3", "::1", "localhost", "app.localhost", "cloacina.example.com"] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in ["evil.example", "localhost.evil.example", "example.com", ""] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
        assert!(host_allowed("anything.example", &["*".to_owned()]));
    }

    #[test]
    fn host_names_lose_their_port_case_and_trailing_dot() {
        let named = |h: &str| {
            host_name(&Request::builder().header("host", h).body(axum::body::Body::empty()).expect("request"))
        };
        assert_eq!(named("Evil.Example:8080").as_deref(), Some("evil.example"));
        assert_eq!(named("localhost.").as_deref(), Some("localhost"));
        assert_eq!(named("[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(named("10.0.0.1").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_until_its_minute_ends() {
        let failures = AuthFailures::new(3);
        let ip: IpAddr = "192.0.2.1".parse().expect("address");
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!failures.blocked(ip, t0));
            failures.record(ip, t0);
        }
        assert!(failures.blocked(ip, t0 + Duration::from_secs(59)));
        assert!(!failures.blocked("192.0.2.2".parse().expect("address"), t0));
        assert!(!failures.blocked(ip, t0 + Duration::from_secs(60)));
    }
}
