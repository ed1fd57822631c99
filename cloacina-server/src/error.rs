//! [`ApiError`]: every error the API returns, as `{"error": {"code", "message"}}` with its status.
//! Codes are stable: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
//! `payload_too_large`, `unavailable`, `internal`.

use axum::http::StatusCode;
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

/// A refused operator action: no such run or workflow is 404, a run in the wrong status 409.
impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::WrongStatus { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", r.to_string()),
            _ => ApiError::not_found(r.to_string()),
        }
    }
}

/// A JSON body that could not be read: too large is 413, anything else 400.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", r.body_text())
        } else {
            ApiError::bad_request(r.body_text())
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}
