//! The web dashboard: one page and its script and style sheet, compiled into the binary (no CDN,
//! no network at run time, no build step). The page is a client of `/api/v1` through relative
//! URLs, so it works wherever the router is mounted. It has no inline script or style, so the
//! server's Content-Security-Policy allows nothing but its own files.

use axum::extract::OriginalUri;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Assets change with the binary: a short cache is enough and never serves a stale page long.
const CACHE: &str = "public, max-age=60";

/// The page; asked for without its trailing slash (the router mounted at `/cloacina` and opened
/// as `/cloacina`), a redirect to the slashed path first, so its relative URLs resolve under it.
pub(crate) async fn index(OriginalUri(uri): OriginalUri) -> Response {
    if !uri.path().ends_with('/') {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return Redirect::permanent(&format!("{}/{query}", uri.path())).into_response();
    }
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX).into_response()
}

pub(crate) async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], SCRIPT)
}

pub(crate) async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, CACHE)], STYLE)
}
