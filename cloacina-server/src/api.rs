//! The handlers of `/healthz`, `/readyz`, `/metrics` and `/api/v1`, each declared with its
//! OpenAPI operation (`#[utoipa::path]`) and registered through `utoipa_axum::routes!`, so the
//! router and the document served at `/api/v1/openapi.json` come from the same declarations and
//! cannot drift: request and response schemas are the handlers' own types.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use cloacina::clock::{Clock, SystemClock};
use cloacina::cron::ScheduleConfig;
use cloacina::dal::pipeline_executions::{self as pipelines, PipelineFilter};
use cloacina::dal::{contexts, cron_executions, cron_schedules, workflow_registry};
use cloacina::models::openapi::pipeline_status;
use cloacina::models::{
    CatchupPolicy, CronExecution, CronSchedule, CronScheduleId, PipelineExecution, PipelineExecutionId, PipelineStatus,
    RecoveryEvent, TaskAttempt, TaskExecution,
};
use cloacina::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
        .routes(routes!(cancel_run))
        .routes(routes!(pause_run))
        .routes(routes!(resume_run))
        .routes(routes!(retry_run))
        .routes(routes!(workflows))
        .routes(routes!(list_schedules, create_schedule))
        .routes(routes!(schedule_detail, update_schedule, delete_schedule))
        .routes(routes!(pause_schedule))
        .routes(routes!(resume_schedule));
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(crate::metrics::scrape))
        .nest("/api/v1", v1)
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

/// An error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Stable machine-readable code (`bad_request`, `not_found`, …).
    code: String,
    /// What went wrong, for a person.
    message: String,
}

/// Largest page of runs.
pub(crate) const MAX_PAGE: u32 = 500;

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

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
    let status = s.db.run(cloacina::database::migrate::status).await;
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

/// A run id from the path: a UUID, or 400.
struct RunId(PipelineExecutionId);

/// A schedule id from the path: a UUID, or 400.
struct ScheduleId(CronScheduleId);

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

/// Text from outside, checked by the library's rule (no NUL, bounded length) as a 400.
fn checked(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    cloacina::input::text(field, value, max).map_err(|e| ApiError::bad_request(format!("invalid {e}")))
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

/// A page cursor: the last row's creation time (microseconds since the epoch) and id.
fn cursor_of(p: &PipelineExecution) -> String {
    format!("{}_{}", p.created_at.timestamp_micros(), p.id)
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, PipelineExecutionId), ApiError> {
    let shown: String = text.chars().take(64).collect();
    let bad = || ApiError::bad_request(format!("`{shown}` is not a cursor from a previous page"));
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
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
    if let Some(workflow) = &q.workflow {
        checked("workflow", workflow, cloacina::input::MAX_NAME)?;
    }
    let filter = PipelineFilter {
        workflow_name: q.workflow,
        status: q.status,
        since: q.since,
        until: q.until,
        after: q.cursor.as_deref().map(parse_cursor).transpose()?,
        limit: limit + 1,
        offset: 0,
    };
    let mut runs = s.db.run(move |c| pipelines::list(c, &filter)).await?;
    let next = (runs.len() > limit as usize).then(|| {
        runs.truncate(limit as usize);
        runs.last().map(cursor_of)
    });
    Ok(Json(RunsPage { runs, next_cursor: next.flatten() }))
}

/// One run with everything known about it.
#[derive(Serialize, ToSchema)]
struct RunDetail {
    run: PipelineExecution,
    /// The input context.
    #[schema(value_type = Option<Object>)]
    input: Option<Value>,
    /// The final context, once the run completed.
    #[schema(value_type = Option<Object>)]
    output: Option<Value>,
    tasks: Vec<TaskExecution>,
    /// Every attempt of every task.
    attempts: Vec<TaskAttempt>,
    recovery_events: Vec<RecoveryEvent>,
    /// Why an unfinished run has not ended, for people.
    waiting: Vec<String>,
    /// The task graph of the run's workflow version, as registered.
    #[schema(value_type = Option<Object>)]
    graph: Option<Value>,
}

/// A run: its tasks and their attempts, recovery events, contexts, graph, and why it waits.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), responses(
    (status = OK, body = RunDetail),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
))]
async fn run_detail(State(s): Shared, RunId(id): RunId) -> Result<Json<RunDetail>, ApiError> {
    let now = now();
    let found =
        s.db.run(move |c| {
            let Some(d) = cloacina::admin::run_details(c, id, now)? else { return Ok(None) };
            let input = d.pipeline.context_id.map(|cid| contexts::get(c, cid)).transpose()?.flatten();
            let output = d.pipeline.final_context_id.map(|cid| contexts::get(c, cid)).transpose()?.flatten();
            let graph =
                workflow_registry::get(c, &d.pipeline.workflow_name, &d.pipeline.workflow_version)?.map(|e| e.graph);
            Ok::<_, cloacina::database::Error>(Some((d, input, output, graph)))
        })
        .await?;
    let Some((d, input, output, graph)) = found else { return Err(ApiError::not_found(format!("no run {id}"))) };
    Ok(Json(RunDetail {
        waiting: d.waiting.iter().map(ToString::to_string).collect(),
        run: d.pipeline,
        input,
        output,
        tasks: d.tasks,
        attempts: d.attempts,
        recovery_events: d.recovery_events,
        graph,
    }))
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

fn context_of(value: Option<Value>) -> Result<Context<Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Context::new()),
        Some(v @ Value::Object(_)) => Context::from_value(v).map_err(|e| ApiError::bad_request(e.to_string())),
        Some(_) => Err(ApiError::bad_request("context must be a JSON object")),
    }
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
    let input = context_of(body.context)?;
    let now = now();
    let id =
        s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::ops::start_run(c, &body.workflow, &input, now)??)).await?;
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
    let now = now();
    let new = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::ops::retry_run(c, id, now)??)).await?;
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
    action: fn(
        &mut cloacina::database::AnyConnection,
        PipelineExecutionId,
        DateTime<Utc>,
    ) -> cloacina::ops::Outcome<()>,
) -> Result<Json<RunState>, ApiError> {
    let now = now();
    let status =
        s.db.run_with(move |c| {
            action(c, id, now)??;
            pipelines::get(c, id)?.map(|p| p.status).ok_or_else(|| ApiError::not_found(format!("no run {id}")))
        })
        .await?;
    Ok(Json(RunState { id, status }))
}

/// Cancel a Pending, Running or Paused run: tasks not started never run.
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = OK, body = RunState),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = CONFLICT, description = "The run already ended", body = ErrorBody),
))]
async fn cancel_run(State(s): Shared, RunId(id): RunId) -> Result<Json<RunState>, ApiError> {
    act(s, id, cloacina::ops::cancel_run).await
}

/// Pause a Pending or Running run: nothing new starts until it is resumed.
#[utoipa::path(post, path = "/runs/{id}/pause", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = OK, body = RunState),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = CONFLICT, description = "The run is not Pending or Running", body = ErrorBody),
))]
async fn pause_run(State(s): Shared, RunId(id): RunId) -> Result<Json<RunState>, ApiError> {
    act(s, id, cloacina::ops::pause_run).await
}

/// Resume a Paused run.
#[utoipa::path(post, path = "/runs/{id}/resume", tag = "runs", params(("id" = uuid::Uuid, Path, description = "The run's id")), security(("bearer" = [])), responses(
    (status = OK, body = RunState),
    (status = NOT_FOUND, description = "No such run", body = ErrorBody),
    (status = CONFLICT, description = "The run is not Paused", body = ErrorBody),
))]
async fn resume_run(State(s): Shared, RunId(id): RunId) -> Result<Json<RunState>, ApiError> {
    act(s, id, cloacina::ops::resume_run).await
}

/// The registered workflows, each with its versions.
#[derive(Serialize, ToSchema)]
struct Workflows {
    workflows: Vec<WorkflowVersions>,
}

/// One workflow and the versions runners registered.
#[derive(Serialize, ToSchema)]
struct WorkflowVersions {
    name: String,
    /// Oldest first.
    versions: Vec<WorkflowVersion>,
}

/// One registered version of a workflow.
#[derive(Serialize, ToSchema)]
struct WorkflowVersion {
    /// Structural version (content hash).
    version: String,
    first_seen_at: DateTime<Utc>,
    last_seen_at: DateTime<Utc>,
    /// A runner with this version was seen within the last minute.
    live: bool,
    /// The task graph.
    #[schema(value_type = Object)]
    graph: Value,
}

/// Workflows registered by runners, with their versions and task graphs.
#[utoipa::path(get, path = "/workflows", tag = "workflows", responses((status = OK, body = Workflows)))]
async fn workflows(State(s): Shared) -> Result<Json<Workflows>, ApiError> {
    let now = now();
    let entries = s.db.run(workflow_registry::list).await?;
    let mut by_name: BTreeMap<String, Vec<WorkflowVersion>> = BTreeMap::new();
    for e in entries {
        let live = cloacina::admin::is_live(&e, now);
        by_name.entry(e.workflow_name.clone()).or_default().push(WorkflowVersion {
            version: e.version,
            first_seen_at: e.first_seen_at,
            last_seen_at: e.last_seen_at,
            live,
            graph: e.graph,
        });
    }
    let workflows = by_name.into_iter().map(|(name, versions)| WorkflowVersions { name, versions }).collect();
    Ok(Json(Workflows { workflows }))
}

/// Every cron schedule.
#[derive(Serialize, ToSchema)]
struct Schedules {
    schedules: Vec<CronSchedule>,
}

/// Cron schedules.
#[utoipa::path(get, path = "/schedules", tag = "schedules", responses((status = OK, body = Schedules)))]
async fn list_schedules(State(s): Shared) -> Result<Json<Schedules>, ApiError> {
    let schedules = s.db.run(cron_schedules::list).await?;
    Ok(Json(Schedules { schedules }))
}

/// One schedule, its next fire times and its recent history.
#[derive(Serialize, ToSchema)]
struct ScheduleDetail {
    schedule: CronSchedule,
    /// The next five fire times (if resumed now, for a paused schedule).
    next_fire_times: Vec<DateTime<Utc>>,
    /// The last twenty fire times, newest first.
    history: Vec<CronExecution>,
}

/// A cron schedule with its next fire times and recent history.
#[utoipa::path(get, path = "/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), responses(
    (status = OK, body = ScheduleDetail),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn schedule_detail(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<Json<ScheduleDetail>, ApiError> {
    let now = now();
    let (schedule, history) =
        s.db.run_with(move |c| {
            let schedule = cloacina::cron::get(c, id)?;
            let history = cron_executions::list_for_schedule(c, id, 20, 0)?;
            Ok::<_, ApiError>((schedule, history))
        })
        .await?;
    let next_fire_times = cloacina::cron::upcoming(&schedule, 5, now)?;
    Ok(Json(ScheduleDetail { schedule, next_fire_times, history }))
}

/// `POST /schedules` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSchedule {
    /// A registered workflow.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00]*$")]
    workflow: String,
    /// Cron expression: 5 fields, or 6 with seconds.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\x00]*$")]
    expression: String,
    /// IANA time zone the expression is read in (default UTC).
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$")]
    timezone: Option<String>,
    /// Input context of every run it starts (a JSON object).
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    /// What to do about fire times missed while no runner was up.
    catchup: Option<CatchupPolicy>,
    /// Most missed fire times `run_all` replays.
    #[schema(maximum = 2147483647)]
    max_catchup: Option<u32>,
    /// False: created paused.
    enabled: Option<bool>,
}

/// `PUT /schedules/{id}` body: the settings to change (a schedule's workflow cannot change:
/// create another schedule).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ScheduleChange {
    /// Cron expression: 5 fields, or 6 with seconds.
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\\x00]*$")]
    expression: Option<String>,
    /// IANA time zone the expression is read in.
    #[schema(min_length = 1, max_length = 64, pattern = "^[^\\x00]*$")]
    timezone: Option<String>,
    /// Input context of every run it starts (a JSON object).
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    /// What to do about fire times missed while no runner was up.
    catchup: Option<CatchupPolicy>,
    /// Most missed fire times `run_all` replays.
    #[schema(maximum = 2147483647)]
    max_catchup: Option<u32>,
    /// False: pause it; true: resume it.
    enabled: Option<bool>,
}

/// Applies the settings a body gives to `config`.
fn apply(mut config: ScheduleConfig, change: ScheduleChange) -> Result<ScheduleConfig, ApiError> {
    if let Some(expression) = change.expression {
        config.expression = expression;
    }
    if let Some(tz) = change.timezone {
        config = config.timezone(tz);
    }
    if change.context.is_some() {
        config = config.context(context_of(change.context)?);
    }
    if let Some(policy) = change.catchup {
        config = config.catchup(policy);
    }
    if let Some(n) = change.max_catchup {
        config = config.max_catchup(n);
    }
    match change.enabled {
        Some(false) => config = config.paused(),
        Some(true) => config.enabled = true,
        None => {}
    }
    Ok(config)
}

/// A schedule as stored after a change.
#[derive(Serialize, ToSchema)]
struct ScheduleOne {
    schedule: CronSchedule,
}

/// Create a cron schedule for a registered workflow.
#[utoipa::path(post, path = "/schedules", tag = "schedules", request_body = NewSchedule, security(("bearer" = [])), responses(
    (status = CREATED, body = ScheduleOne),
    (status = NOT_FOUND, description = "No such workflow is registered", body = ErrorBody),
    (status = PAYLOAD_TOO_LARGE, description = "The body is over the limit", body = ErrorBody),
    (status = UNSUPPORTED_MEDIA_TYPE, description = "The body is not JSON", body = ErrorBody),
))]
async fn create_schedule(
    State(s): Shared,
    body: Result<Json<NewSchedule>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let change = ScheduleChange {
        expression: None,
        timezone: body.timezone,
        context: body.context,
        catchup: body.catchup,
        max_catchup: body.max_catchup,
        enabled: body.enabled,
    };
    let config = apply(ScheduleConfig::new(body.workflow, body.expression), change)?;
    let now = now();
    let schedule = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::ops::create_schedule(c, &config, now)??)).await?;
    Ok((StatusCode::CREATED, Json(ScheduleOne { schedule })).into_response())
}

/// Change a schedule's expression, time zone, context, catch-up or state; its next fire time is
/// recomputed from now.
#[utoipa::path(put, path = "/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), request_body = ScheduleChange, security(("bearer" = [])), responses(
    (status = OK, body = ScheduleOne),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
    (status = PAYLOAD_TOO_LARGE, description = "The body is over the limit", body = ErrorBody),
    (status = UNSUPPORTED_MEDIA_TYPE, description = "The body is not JSON", body = ErrorBody),
))]
async fn update_schedule(
    State(s): Shared,
    ScheduleId(id): ScheduleId,
    body: Result<Json<ScheduleChange>, JsonRejection>,
) -> Result<Json<ScheduleOne>, ApiError> {
    let Json(body) = body?;
    let now = now();
    let schedule =
        s.db.run_with(move |c| {
            let current = cloacina::cron::get(c, id)?;
            let config = ScheduleConfig::from_schedule(&current).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok::<_, ApiError>(cloacina::cron::update(c, id, &apply(config, body)?, now)?)
        })
        .await?;
    Ok(Json(ScheduleOne { schedule }))
}

/// Delete a schedule and its fire-time history (the runs it started stay).
#[utoipa::path(delete, path = "/schedules/{id}", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), security(("bearer" = [])), responses(
    (status = NO_CONTENT, description = "Deleted"),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn delete_schedule(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<StatusCode, ApiError> {
    if s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::cron::delete(c, id)?)).await? {
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
    let now = now();
    let changed = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::cron::pause(c, id, now)?)).await?;
    Ok(Json(ScheduleState { id, enabled: false, changed }))
}

/// Resume a paused schedule from now (fire times missed while paused are not run).
#[utoipa::path(post, path = "/schedules/{id}/resume", tag = "schedules", params(("id" = uuid::Uuid, Path, description = "The schedule's id")), security(("bearer" = [])), responses(
    (status = OK, body = ScheduleState),
    (status = NOT_FOUND, description = "No such schedule", body = ErrorBody),
))]
async fn resume_schedule(State(s): Shared, ScheduleId(id): ScheduleId) -> Result<Json<ScheduleState>, ApiError> {
    let now = now();
    let changed = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::cron::resume(c, id, now)?)).await?;
    Ok(Json(ScheduleState { id, enabled: true, changed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time");
        let id = PipelineExecutionId::new();
        let text = format!("{}_{id}", at.timestamp_micros());
        assert_eq!(parse_cursor(&text).expect("cursor"), (at, id));
        for bad in ["", "x", "12_", "_abc", "12_notauuid"] {
            assert_eq!(parse_cursor(bad).expect_err(bad).status, StatusCode::BAD_REQUEST);
        }
    }
}
