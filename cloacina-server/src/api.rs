//! The handlers of `/healthz`, `/readyz`, `/metrics` and `/api/v1`, each declared with its
//! OpenAPI operation (`#[utoipa::path]`) and registered through `utoipa_axum::routes!`, so the
//! router and the document served at `/api/v1/openapi.json` come from the same declarations and
//! cannot drift: request and response schemas are the handlers' own types.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use cloacina::models::openapi::pipeline_status;
use cloacina::models::{
    CronSchedule, CronScheduleId, PipelineExecution, PipelineExecutionId, PipelineStatus, WorkflowPackage,
};
use cloacina::ops::runs::{Cursor, RunDetails, RunFilter};
use cloacina::ops::schedules::{ChangeSchedule, CreateSchedule, ScheduleDetails};
use cloacina::ops::workflows::WorkflowVersions;
use cloacina::ops::{self, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::ids::{RunId, ScheduleId};
use crate::{ApiError, AppState};

type Shared = State<Arc<AppState>>;

/// The document's fixed parts; the paths and schemas come from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cloacina API",
        version = "1",
        description = "Runs, workflows and cron schedules of a Cloacina database. Requests that change something \
                       need `Authorization: Bearer <token>` when the server has a token, and are refused from a \
                       browser page of another origin. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerToken)
)]
struct Document;

/// The `bearer` security scheme the changing operations name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes with their OpenAPI operations: `/healthz`, `/readyz` and `/metrics` at the root,
/// the API under `/api/v1`.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    let v1 = OpenApiRouter::new()
        .routes(routes!(openapi))
        .routes(routes!(list_runs, start_run))
        .routes(routes!(run_detail))
        .routes(routes!(crate::events::all_events))
        .routes(routes!(crate::events::run_events))
        .routes(routes!(cancel_run))
        .routes(routes!(pause_run))
        .routes(routes!(resume_run))
        .routes(routes!(retry_run))
        .routes(routes!(workflows))
        .routes(routes!(workflow_overview))
        .routes(routes!(packages, crate::packages::upload_package))
        .routes(routes!(crate::packages::package_detail, crate::packages::delete_package))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(schedule_detail, update_schedule, delete_schedule))
        .routes(routes!(pause_schedule))
        .routes(routes!(resume_schedule));
    health_routes().nest("/api/v1", v1)
}

/// `/healthz`, `/readyz` and `/metrics`: all a worker (`serve --mode worker`) serves.
pub(crate) fn health_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(crate::metrics::scrape))
}

/// Completes the generated document: every operation may also answer 400 (a malformed request),
/// 421 (a host name the server does not answer to) and 503 (busy or the database unreachable),
/// whatever its own responses say; the changing ones 401, 403 and 429 too.
pub(crate) fn finish(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{HttpMethod, RefOr, ResponseBuilder};
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            (HttpMethod::Get, item.get.as_mut()),
            (HttpMethod::Post, item.post.as_mut()),
            (HttpMethod::Put, item.put.as_mut()),
            (HttpMethod::Delete, item.delete.as_mut()),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let mut common = vec![
                ("400", "The request is malformed"),
                ("421", "The Host header names this server by a name it does not answer to"),
                ("503", "The server is busy or its database unreachable: retry"),
            ];
            if method != HttpMethod::Get {
                common.extend([
                    ("401", "A token is needed and was not sent, or is wrong"),
                    ("403", "Sent from a browser page of another origin"),
                    ("429", "Too many failed authentications from this address"),
                ]);
            }
            for (status, description) in common {
                operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description));
            }
        }
    }
}

/// Largest page of runs.
pub(crate) const MAX_PAGE: u32 = 500;

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is under /api/v1 (see /api/v1/openapi.json)")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

/// The process answers.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    status: String,
}

/// The process answers (no database access).
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = OK, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".to_owned() })
}

/// The database answers and is migrated.
#[derive(Serialize, ToSchema)]
struct Ready {
    /// Always `ready`.
    status: String,
    /// `postgres` or `sqlite`.
    backend: String,
    /// Migrations applied.
    migrations: usize,
}

/// Ready when the database answers and has every migration this version knows, and none newer.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = OK, body = Ready),
    (status = SERVICE_UNAVAILABLE, description = "The database is unreachable or not migrated", body = ErrorBody),
))]
async fn readyz(State(s): Shared) -> Response {
    let status = s.db.run_with(|c| ops::database::status(c, false)).await;
    match status {
        Ok(m) if m.pending.is_empty() => {
            Json(Ready { status: "ready".to_owned(), backend: m.backend.to_string(), migrations: m.applied.len() })
                .into_response()
        }
        Ok(m) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("the database lacks {} migration(s): run `cloacinactl db migrate`", m.pending.len()),
        )
        .into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string()).into_response(),
    }
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses(
    (status = OK, description = "The OpenAPI document", content_type = "application/json", body = Object),
))]
async fn openapi(State(s): Shared) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], s.openapi.clone()).into_response()
}

/// `GET /runs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only runs of this workflow.
    #[param(max_length = 255, pattern = "^[^\\x00]*$")]
    workflow: Option<String>,
    /// Only runs in this status.
    #[param(schema_with = pipeline_status)]
    status: Option<PipelineStatus>,
    /// Only runs created at or after this time (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Only runs created before this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
struct RunsPage {
    runs: Vec<PipelineExecution>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Runs, newest first (keyset pagination).
#[utoipa::path(get, path = "/runs", tag = "runs", params(RunsQuery), responses((status = OK, body = RunsPage)))]
async fn list_runs(
    State(s): Shared,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunsPage>, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit} is outside 1..={MAX_PAGE}")));
    }
    let after =
        q.cursor.as_deref().map(str::parse::<Cursor>).transpose().map_err(|e| ApiError::bad_request(e.to_string()))?;
    let filter = RunFilter {
        workflow_name: q.workflow,
        status: q.status,
        since: q.since,
        until: q.until,
        after: after.map(|c| (c.created_at, c.id)),
        limit,
        offset: 0,
    };
    let page = s.db.run_with(move |c| ops::runs::list(c, &filter)).await?;
    Ok(Json(RunsPage { runs: page.runs, next_cursor: page.next.map(|c| c.to_string()) }))
}

/// A run: its tasks and their attempts, recovery events, contexts, graph, and why it waits.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), responses(
    (status = OK, body = RunDetails),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
))]
async fn run_detail(State(s): Shared, RunId(id): RunId) -> Result<Json<RunDetails>, ApiError> {
    let now = s.config.clock.now();
    let details = s.db.run_with(move |c| ops::runs::details(c, id, now)).await?;
    details.map(Json).ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

/// `POST /runs` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartRun {
    /// A registered workflow.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00]*$")]
    workflow: String,
    /// The input context (a JSON object; `null` or absent: empty).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
}

/// A run was started.
#[derive(Serialize, ToSchema)]
struct Started {
    /// The new run.
    id: PipelineExecutionId,
}

/// Start a run of a registered workflow at its live version.
#[utoipa::path(post, path = "/runs", tag = "runs", request_body = StartRun, security(("bearer" = [])), responses(
    (status = CREATED, body = Started),
    (status = NOT_FOUND, description = "No such workflow is registered", body = ErrorBody),
    (status = PAYLOAD_TOO_LARGE, description = "The body is over the limit", body = ErrorBody),
    (status = UNSUPPORTED_MEDIA_TYPE, description = "The body is not JSON", body = ErrorBody),
))]
async fn start_run(State(s): Shared, body: Result<Json<StartRun>, JsonRejection>) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let input = ops::context_of(body.context.unwrap_or(Value::Null))?;
    let now = s.config.clock.now();
    let id = s.db.run_with(move |c| Ok::<_, ApiError>(ops::runs::start(c, &body.workflow, &input, now)??)).await?;
    Ok((StatusCode::CREATED, Json(Started { id })).into_response())
}

/// A retry was started.
#[derive(Serialize, ToSchema)]
struct Retried {
    /// The new run.
    id: PipelineExecutionId,
    /// The run it retries.
    retry_of: PipelineExecutionId,
}

/// Retry a failed or cancelled run: a new run with the same input.
#[utoipa::path(post, path = "/runs/{id}/retry", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = CREATED, body = Retried),
    (status = NOT_FOUND, description = "No such run, or its workflow is no longer registered", body = ErrorBody),
    (status = CONFLICT, description = "The run is not Failed or Cancelled", body = ErrorBody),
))]
async fn retry_run(State(s): Shared, RunId(id): RunId) -> Result<Response, ApiError> {
    let now = s.config.clock.now();
    let new = s.db.run_with(move |c| Ok::<_, ApiError>(ops::runs::retry(c, id, now)??)).await?;
    Ok((StatusCode::CREATED, Json(Retried { id: new, retry_of: id })).into_response())
}

/// A run after an action.
#[derive(Serialize, ToSchema)]
struct RunState {
    id: PipelineExecutionId,
    /// Its status after the action.
    #[schema(schema_with = pipeline_status)]
    status: PipelineStatus,
}

/// Runs a run action and answers with the run's status after it.
async fn act(
    s: Arc<AppState>,
    id: PipelineExecutionId,
    action: fn(&mut cloacina::database::AnyConnection, PipelineExecutionId, DateTime<Utc>) -> Outcome<PipelineStatus>,
) -> Result<Json<RunState>, ApiError> {
    let now = s.config.clock.now();
    let status = s.db.run_with(move |c| Ok::<_, ApiError>(action(c, id, now)??)).await?;
    Ok(Json(RunState { id, status }))
}

/// [`ops::runs::resume`] as a run action.
fn resume(
    conn: &mut cloacina::database::AnyConnection,
    id: PipelineExecutionId,
    now: DateTime<Utc>,
) -> Outcome<PipelineStatus> {
    Ok(ops::runs::resume(conn, id, now)?.map(|r| r.status))
}

/// Cancel a Pending, Running or Paused run: tasks not started never run.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = OK, body = RunState),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = CONFLICT, description = "The run already ended", body = ErrorBody),
))]
async fn cancel_run(State(s): Shared, RunId(id): RunId) -> Result<Json<RunState>, ApiError> {
    act(s, id, ops::runs::cancel).await
}

/// Pause a Pending or Running run: nothing new starts until it is resumed.
#[utoipa::path(post, path = "/runs/{id}/pause", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = OK, body = RunState),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = CONFLICT, description = "The run is not Pending or Running", body = ErrorBody),
))]
async fn pause_run(State(s): Shared, RunId(id): RunId) -> Result<Json<RunState>, ApiError> {
    act(s, id, ops::runs::pause).await
}

/// Resume a Paused run.
#[utoipa::path(post, path = "/runs/{id}/resume", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = OK, body = RunState),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = CONFLICT, description = "The run is not Paused", body = ErrorBody),
))]
async fn resume_run(State(s): Shared, RunId(id): RunId) -> Result<Json<RunState>, ApiError> {
    act(s, id, resume).await
}

/// `GET /workflows/{name}/overview` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OverviewQuery {
    /// The window: runs created in the last this many hours.
    #[param(minimum = 1, maximum = 720, default = 24)]
    hours: Option<u32>,
}

/// The longest overview window, in hours (30 days).
const MAX_OVERVIEW_HOURS: u32 = 720;

/// A workflow at a glance: its runs per status over time (24 buckets), each task's duration
/// percentiles, and its Ready queue (depth and the oldest task's wait).
#[utoipa::path(get, path = "/workflows/{name}/overview", tag = "workflows", params(
    ("name" = String, Path, description = "The workflow's name"), OverviewQuery),
    responses(
        (status = OK, body = ops::overview::Overview),
        (status = NOT_FOUND, description = "No such workflow is registered", body = ErrorBody),
))]
async fn workflow_overview(
    State(s): Shared,
    axum::extract::Path(name): axum::extract::Path<String>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<ops::overview::Overview>, ApiError> {
    let Query(q) = query?;
    let hours = q.hours.unwrap_or(24);
    if !(1..=MAX_OVERVIEW_HOURS).contains(&hours) {
        return Err(ApiError::bad_request(format!("hours {hours} is outside 1..={MAX_OVERVIEW_HOURS}")));
    }
    let now = s.config.clock.now();
    let since = now - chrono::Duration::hours(i64::from(hours));
    Ok(Json(s.db.run_with(move |c| ops::overview::overview(c, &name, since, now)).await??))
}

/// The registered workflows, each with its versions.
#[derive(Serialize, ToSchema)]
struct Workflows {
    workflows: Vec<WorkflowVersions>,
}

/// Workflows registered by runners, with their versions and task graphs.
#[utoipa::path(get, path = "/workflows", tag = "workflows", responses((status = OK, body = Workflows)))]
async fn workflows(State(s): Shared) -> Result<Json<Workflows>, ApiError> {
    let now = s.config.clock.now();
    let workflows = s.db.run_with(move |c| ops::workflows::list(c, now)).await?;
    Ok(Json(Workflows { workflows }))
}

/// The workflow packages daemons loaded.
#[derive(Serialize, ToSchema)]
struct Packages {
    packages: Vec<WorkflowPackage>,
}

/// Workflow packages as daemons and uploads recorded them: version, status (`uploaded`, `loaded`,
/// `failed`, `removed`), content hash, the workflows each defines, and why a load failed.
#[utoipa::path(get, path = "/packages", tag = "packages", responses((status = OK, body = Packages)))]
async fn packages(State(s): Shared) -> Result<Json<Packages>, ApiError> {
    let packages = s.db.run_with(ops::packages::list).await?;
    Ok(Json(Packages { packages }))
}

/// Every cron schedule.
#[derive(Serialize, ToSchema)]
struct Schedules {
    schedules: Vec<CronSchedule>,
}

/// Cron schedules.
#[utoipa::path(get, path = "/schedules", tag = "schedules", responses((status = OK, body = Schedules)))]
async fn list_schedules(State(s): Shared) -> Result<Json<Schedules>, ApiError> {
    let schedules = s.db.run_with(ops::schedules::list).await?;
    Ok(Json(Schedules { schedules }))
}

/// A cron schedule with its next fire times and recent history.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), responses(
    (status = OK, body = ScheduleDetails),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn schedule_detail(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<Json<ScheduleDetails>, ApiError> {
    let now = s.config.clock.now();
    Ok(Json(s.db.run_with(move |c| ops::schedules::details(c, id, 5, 20, now)).await?))
}

/// A schedule as stored after a change.
#[derive(Serialize, ToSchema)]
struct ScheduleOne {
    schedule: CronSchedule,
}

/// Create a cron schedule for a registered workflow.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = CreateSchedule, security(("bearer" = [])), responses(
    (status = CREATED, body = ScheduleOne),
    (status = NOT_FOUND, description = "No such workflow is registered", body = ErrorBody),
    (status = PAYLOAD_TOO_LARGE, description = "The body is over the limit", body = ErrorBody),
    (status = UNSUPPORTED_MEDIA_TYPE, description = "The body is not JSON", body = ErrorBody),
))]
async fn create_schedule(
    State(s): Shared,
    body: Result<Json<CreateSchedule>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let now = s.config.clock.now();
    let schedule = s.db.run_with(move |c| Ok::<_, ApiError>(ops::schedules::create(c, body, now)??)).await?;
    Ok((StatusCode::CREATED, Json(ScheduleOne { schedule })).into_response())
}

/// Change a schedule's expression, time zone, context, catch-up or state; its next fire time is
/// recomputed from now.
#[utoipa::path(put, path = "/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), request_body = ChangeSchedule, security(("bearer" = [])), responses(
    (status = OK, body = ScheduleOne),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
    (status = PAYLOAD_TOO_LARGE, description = "The body is over the limit", body = ErrorBody),
    (status = UNSUPPORTED_MEDIA_TYPE, description = "The body is not JSON", body = ErrorBody),
))]
async fn update_schedule(
    State(s): Shared,
    ScheduleId(id): ScheduleId,
    body: Result<Json<ChangeSchedule>, JsonRejection>,
) -> Result<Json<ScheduleOne>, ApiError> {
    let Json(body) = body?;
    let now = s.config.clock.now();
    Ok(Json(ScheduleOne { schedule: s.db.run_with(move |c| ops::schedules::change(c, id, body, now)).await? }))
}

/// Delete a schedule and its fire-time history (the runs it started stay).
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), security(("bearer" = [])), responses(
    (status = NO_CONTENT, description = "Deleted"),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn delete_schedule(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<StatusCode, ApiError> {
    if s.db.run_with(move |c| ops::schedules::delete(c, id)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no cron schedule {id}")))
    }
}

/// A schedule after pause or resume.
#[derive(Serialize, ToSchema)]
struct ScheduleState {
    id: CronScheduleId,
    /// Whether it fires.
    enabled: bool,
    /// False when it already was in that state.
    changed: bool,
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(post, path = "/schedules/{id}/pause", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), security(("bearer" = [])), responses(
    (status = OK, body = ScheduleState),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn pause_schedule(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<Json<ScheduleState>, ApiError> {
    let now = s.config.clock.now();
    let changed = s.db.run_with(move |c| ops::schedules::pause(c, id, now)).await?;
    Ok(Json(ScheduleState { id, enabled: false, changed }))
}

/// Resume a paused schedule from now (fire times missed while paused are not run).
#[utoipa::path(post, path = "/schedules/{id}/resume", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), security(("bearer" = [])), responses(
    (status = OK, body = ScheduleState),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn resume_schedule(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<Json<ScheduleState>, ApiError> {
    let now = s.config.clock.now();
    let changed = s.db.run_with(move |c| ops::schedules::resume(c, id, now)).await?;
    Ok(Json(ScheduleState { id, enabled: true, changed }))
}
