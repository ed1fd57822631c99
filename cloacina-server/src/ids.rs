//! The ids a route takes from its path (`/runs/{id}`, …): parsed, or 400 naming what was
//! expected.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use cloacina::models::{CronScheduleId, PipelineExecutionId, WorkflowPackageId};

use crate::ApiError;

/// A run id from the path: a UUID, or 400.
pub(crate) struct RunId(pub(crate) PipelineExecutionId);

/// A schedule id from the path: a UUID, or 400.
pub(crate) struct ScheduleId(pub(crate) CronScheduleId);

/// The `{id}` of the path, parsed; a text that is not an id is refused naming what it should be.
async fn path_id<T: std::str::FromStr>(parts: &mut Parts, what: &str) -> Result<T, ApiError> {
    let Path(text) = Path::<String>::from_request_parts(parts, &()).await?;
    let shown: String = text.chars().take(64).collect();
    text.parse().map_err(|_| ApiError::bad_request(format!("`{shown}` is not a {what} id (a UUID)")))
}

impl<S: Send + Sync> FromRequestParts<S> for RunId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        path_id(parts, "run").await.map(RunId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ScheduleId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        path_id(parts, "schedule").await.map(ScheduleId)
    }
}

/// A package id from the path: a UUID, or 400.
pub(crate) struct PackageId(pub(crate) WorkflowPackageId);

impl<S: Send + Sync> FromRequestParts<S> for PackageId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        path_id(parts, "package").await.map(PackageId)
    }
}
