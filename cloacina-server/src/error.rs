//! [`ApiError`]: every error the API returns, as `{"error": {"code", "message"}}` with its status.
//! Codes are stable: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
//! `method_not_allowed`, `request_timeout`, `conflict`, `payload_too_large`,
//! `unsupported_media_type`, `misdirected_request`, `too_many_requests`, `internal`, `busy`,
//! `unavailable`, `not_ready`. [`json_errors`] gives the same shape to any error response a layer
//! below produced in another form.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cloacina::ops::Refused;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

/// Engine errors: the caller's mistakes are 4xx, an unreachable database 503, the rest 500.
impl From<cloacina::Error> for ApiError {
    fn from(e: cloacina::Error) -> Self {
        use cloacina::{Error, ErrorKind};
        match (&e, e.kind()) {
            (Error::ExecutionNotFound(_) | Error::ScheduleNotFound(_) | Error::TriggerNotFound(_), _) => {
                ApiError::not_found(e.to_string())
            }
            (_, ErrorKind::InvalidInput) => ApiError::bad_request(e.to_string()),
            (_, ErrorKind::Unavailable) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
            _ => {
                tracing::error!(error = %e, "request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<cloacina::database::Error> for ApiError {
    fn from(e: cloacina::database::Error) -> Self {
        cloacina::Error::Database(e).into()
    }
}

/// A refused operator action: no such run or workflow is 404, any other refusal 409.
impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        if r.is_not_found() {
            ApiError::not_found(r.to_string())
        } else {
            ApiError::new(StatusCode::CONFLICT, "conflict", r.to_string())
        }
    }
}

/// The stable code of an error status.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::MISDIRECTED_REQUEST => "misdirected_request",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// A request axum's extractors refused: its status (400, 413, 415, …) and its reason, as JSON.
fn rejected(status: StatusCode, text: String) -> ApiError {
    // 422 is axum's "well-formed but wrong" (a JSON body of the wrong shape): to clients, as
    // every other input error, 400.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
    ApiError::new(status, code_of(status), text)
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

/// Gives every error response that is not already JSON the `{"error": {"code", "message"}}`
/// shape (a 405 from the router, a rejection some layer answered as text), keeping its status
/// and headers.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    let message = match text {
        Ok(text) if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let json = ApiError::new(status, code_of(status), message).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, json_parts.headers[header::CONTENT_TYPE].clone());
    Response::from_parts(parts, json_body)
}

/// An error response: `{"error": {"code", "message"}}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ErrorDetail {
    /// Stable machine-readable code (`bad_request`, `not_found`, …).
    code: String,
    /// What went wrong, for a person.
    message: String,
}
