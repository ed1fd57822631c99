//! The guard in front of every route: requests that change something (any method but GET, HEAD
//! and OPTIONS) need the bearer token when one is set, and are refused when a browser sends them
//! from a page of another origin.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

pub(crate) async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
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
    if let Some(token) = state.config.token.as_deref() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same_secret(given.as_bytes(), token.as_bytes()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this request changes something: send Authorization: Bearer <token>",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Compares in time that depends only on the lengths, not on where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abc", b"abd"));
        assert!(!super::same_secret(b"abc", b"abcd"));
        assert!(!super::same_secret(b"", b"x"));
    }
}
