//! `/api/v1/packages`: upload a `.cloacina` archive for the workers to load, read one, list them,
//! delete one. Uploading a package means running its code on the workers: the route needs the
//! token, as every change does. The archive is checked as the daemon checks one (safe unpacking
//! within the limits, manifest, layout) by `cloacina::packages::upload`; compiling and loading
//! are the workers'.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cloacina::models::WorkflowPackage;
use cloacina::ops;
use cloacina::ops::packages::WorkerLoad;
use cloacina::packages::Rejected;

/// The header an upload's signature comes in: the `.sig` file's JSON (`cloacinactl package pack
/// --sign`), checked when the server requires signed packages.
pub(crate) const SIGNATURE_HEADER: &str = "x-cloacina-signature";
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::ids::PackageId;
use crate::{ApiError, AppState};

type Shared = State<Arc<AppState>>;

/// A stored package.
#[derive(Serialize, ToSchema)]
pub(crate) struct PackageOne {
    package: WorkflowPackage,
}

/// A stored package and where each live worker stands with it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PackageDetail {
    package: WorkflowPackage,
    workers: Vec<WorkerLoad>,
}

/// What an upload stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct Uploaded {
    package: WorkflowPackage,
    /// False when the same archive was already stored (the same package is answered).
    created: bool,
}

/// Upload a `.cloacina` archive as the raw request body (`Content-Type:
/// application/octet-stream`, or none), or as the file of a `multipart/form-data` form (`curl -F
/// package=@etl.cloacina`). It is checked as the daemon checks an archive and stored
/// `uploaded`; every worker then loads it (status `loaded`, or `failed` with the reason) and a
/// new version of a package becomes the one new runs start at. The same archive again is the same
/// package (200); its version uploaded with other contents is refused (409). The body limit is
/// the server's package limit (default 64 MiB), not the API's.
#[utoipa::path(post, path = "/packages", tag = "packages", security(("bearer" = [])),
    params(("X-Cloacina-Signature" = Option<String>, Header,
        description = "The archive's `.sig` file (JSON); required when the server requires signed packages")),
    request_body(content = String, content_type = "application/octet-stream", description = "The archive (binary)"),
    responses(
        (status = CREATED, body = Uploaded),
        (status = OK, description = "The same archive was already stored", body = Uploaded),
        (status = CONFLICT, description = "The version was uploaded with other contents", body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "The archive is over the limit", body = ErrorBody),
        (status = UNSUPPORTED_MEDIA_TYPE, description = "The body is not an archive", body = ErrorBody),
    ))]
pub(crate) async fn upload_package(State(s): Shared, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let body = match essence.as_str() {
        "" | "application/octet-stream" | "application/x-bzip2" => body,
        "multipart/form-data" => Bytes::from(archive_of_form(media, &body)?),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the archive as the raw body (Content-Type: application/octet-stream) or as the file of a \
                 multipart/form-data form",
            ))
        }
    };
    if body.is_empty() {
        return Err(ApiError::bad_request("the body is empty: send a .cloacina archive"));
    }
    let now = s.config.clock.now();
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.to_str().map(str::to_owned)).transpose().map_err(|_| {
        ApiError::bad_request(format!("the {SIGNATURE_HEADER} header is not text: send the .sig file's JSON"))
    })?;
    let trusted = s.config.trusted_keys.as_deref();
    match cloacina::packages::upload(&s.db, &s.config.loader, body.to_vec(), signature.as_deref(), trusted, now).await?
    {
        Ok((package, created)) => {
            tracing::info!(package = %package.package_name, version = %package.version, created, "package uploaded");
            s.config.tell_packages_changed();
            let status = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok((status, Json(Uploaded { package, created })).into_response())
        }
        Err(Rejected::Refused(r)) => Err(r.into()),
        Err(Rejected::Invalid(cloacina::packages::Error::TooLarge { limit })) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the archive expands past the server's limit of {limit} bytes"),
        )),
        Err(Rejected::Invalid(e)) => Err(ApiError::bad_request(e.to_string())),
    }
}

/// The archive of a `multipart/form-data` body: the first part that carries a file (a
/// `filename`), else the part named `package` or `file`. The body is already in memory (the size
/// limit read it whole), so this is a search, not a stream.
fn archive_of_form(media: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("a multipart upload {why}"));
    let boundary = media
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(|| bad("needs a boundary in its Content-Type"))?;
    let delimiter = format!("--{boundary}").into_bytes();
    let next = [b"\r\n".as_slice(), &delimiter].concat();
    let start = find(body, &delimiter).ok_or_else(|| bad("has no part"))?;
    let mut rest = &body[start + delimiter.len()..];
    let mut named = None;
    while !rest.starts_with(b"--") {
        let part = rest.strip_prefix(b"\r\n").ok_or_else(|| bad("is malformed"))?;
        let headers_end = find(part, b"\r\n\r\n").ok_or_else(|| bad("has a part without headers"))?;
        let headers = String::from_utf8_lossy(&part[..headers_end]).to_ascii_lowercase();
        let content = &part[headers_end + 4..];
        let end = find(content, &next).ok_or_else(|| bad("has an unterminated part"))?;
        let disposition = headers.lines().find(|l| l.starts_with("content-disposition:")).unwrap_or("");
        if disposition.contains("filename=") {
            return Ok(content[..end].to_vec());
        }
        if disposition.contains("name=\"package\"") || disposition.contains("name=\"file\"") {
            named.get_or_insert_with(|| content[..end].to_vec());
        }
        rest = &content[end + next.len()..];
    }
    named.ok_or_else(|| bad("has no file part (send the archive as a file, or in a field named `package`)"))
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A package: its manifest, the workflows it defines (and, once a worker loaded it, their
/// tasks), its status and why a load failed, and where each live worker stands with it
/// (`serving`, `draining`, `not_loaded`).
#[utoipa::path(get, path = "/packages/{id}", tag = "packages", params(("id" = uuid::Uuid, Path, description = "The package's id")), responses(
    (status = OK, body = PackageDetail),
    (status = NOT_FOUND, description = "No such package", body = ErrorBody),
))]
pub(crate) async fn package_detail(
    State(s): Shared,
    PackageId(id): PackageId,
) -> Result<Json<PackageDetail>, ApiError> {
    let now = s.config.clock.now();
    let detail =
        s.db.run_with(move |c| {
            let package = match ops::packages::get(c, id)? {
                Ok(p) => p,
                Err(refused) => return Ok(Err(refused)),
            };
            let workers = ops::packages::workers(c, &package, now)?;
            Ok::<_, cloacina::Error>(Ok(PackageDetail { package, workers }))
        })
        .await??;
    Ok(Json(detail))
}

/// Delete a package: recorded `removed`; the workers start no new runs of its workflows (within
/// their poll interval) and runs in flight finish.
#[utoipa::path(delete, path = "/packages/{id}", tag = "packages", params(("id" = uuid::Uuid, Path, description = "The package's id")), security(("bearer" = [])), responses(
    (status = OK, body = PackageOne),
    (status = NOT_FOUND, description = "No such package", body = ErrorBody),
))]
pub(crate) async fn delete_package(State(s): Shared, PackageId(id): PackageId) -> Result<Json<PackageOne>, ApiError> {
    let now = s.config.clock.now();
    let package = s.db.run_with(move |c| ops::packages::delete(c, id, now)).await??;
    tracing::info!(package = %package.package_name, version = %package.version, "package deleted");
    s.config.tell_packages_changed();
    Ok(Json(PackageOne { package }))
}
