//! The handlers of `/healthz`, `/readyz` and `/api/v1`. Every route is listed in [`ROUTES`], which
//! a test compares with the OpenAPI document.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use cloacina::clock::{Clock, SystemClock};
use cloacina::cron::ScheduleConfig;
use cloacina::dal::pipeline_executions::{self as pipelines, PipelineFilter};
use cloacina::dal::{contexts, cron_executions, cron_schedules, workflow_registry};
use cloacina::models::{CatchupPolicy, CronScheduleId, PipelineExecution, PipelineExecutionId, PipelineStatus};
use cloacina::Context;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{ApiError, AppState};

type Shared = State<Arc<AppState>>;
type ApiResult = Result<Response, ApiError>;

/// Every route under `/api/v1` (method, path in OpenAPI's form).
#[cfg_attr(not(test), allow(dead_code))] // read by the test that checks the OpenAPI document
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/runs"),
    ("post", "/runs"),
    ("get", "/runs/{id}"),
    ("post", "/runs/{id}/cancel"),
    ("post", "/runs/{id}/pause"),
    ("post", "/runs/{id}/resume"),
    ("post", "/runs/{id}/retry"),
    ("get", "/workflows"),
    ("get", "/schedules"),
    ("post", "/schedules"),
    ("get", "/schedules/{id}"),
    ("put", "/schedules/{id}"),
    ("delete", "/schedules/{id}"),
    ("post", "/schedules/{id}/pause"),
    ("post", "/schedules/{id}/resume"),
];

/// The OpenAPI 3.1 document of the API.
pub(crate) const OPENAPI: &str = include_str!("openapi.json");

/// Largest page of runs.
pub(crate) const MAX_PAGE: u32 = 500;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/runs", get(list_runs).post(start_run))
        .route("/runs/{id}", get(run_detail))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/runs/{id}/pause", post(pause_run))
        .route("/runs/{id}/resume", post(resume_run))
        .route("/runs/{id}/retry", post(retry_run))
        .route("/workflows", get(workflows))
        .route("/schedules", get(list_schedules).post(create_schedule))
        .route("/schedules/{id}", get(schedule_detail).put(update_schedule).delete(delete_schedule))
        .route("/schedules/{id}/pause", post(pause_schedule))
        .route("/schedules/{id}/resume", post(resume_schedule))
}

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

fn ok(value: Value) -> ApiResult {
    Ok(Json(value).into_response())
}

fn created(value: Value) -> ApiResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API is under /api/v1 (see /api/v1/openapi.json)")
}

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the database answers and has every migration this version knows, and none newer.
pub(crate) async fn readyz(State(s): Shared) -> Response {
    let status = s.db.run(cloacina::database::migrate::status).await;
    match status {
        Ok(m) if m.pending.is_empty() => {
            Json(json!({ "status": "ready", "backend": m.backend.to_string(), "migrations": m.applied.len() }))
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

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn run_id(text: &str) -> Result<PipelineExecutionId, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request(format!("`{text}` is not a run id (a UUID)")))
}

fn schedule_id(text: &str) -> Result<CronScheduleId, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request(format!("`{text}` is not a schedule id (a UUID)")))
}

/// `GET /runs` filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    workflow: Option<String>,
    status: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// A page cursor: the last row's creation time (microseconds since the epoch) and id.
fn cursor_of(p: &PipelineExecution) -> String {
    format!("{}_{}", p.created_at.timestamp_micros(), p.id)
}

fn parse_cursor(text: &str) -> Result<(DateTime<Utc>, PipelineExecutionId), ApiError> {
    let bad = || ApiError::bad_request(format!("`{text}` is not a cursor from a previous page"));
    let (micros, id) = text.split_once('_').ok_or_else(bad)?;
    let at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

async fn list_runs(State(s): Shared, query: Result<Query<RunsQuery>, QueryRejection>) -> ApiResult {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit {limit} is outside 1..={MAX_PAGE}")));
    }
    let status = q.status.map(|s| s.parse::<PipelineStatus>()).transpose().map_err(|e| {
        ApiError::bad_request(format!("{e}; expected one of Pending, Running, Paused, Completed, Failed, Cancelled"))
    })?;
    let filter = PipelineFilter {
        workflow_name: q.workflow,
        status,
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
    ok(json!({ "runs": runs, "next_cursor": next.flatten() }))
}

async fn run_detail(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = run_id(&id)?;
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
    let waiting: Vec<String> = d.waiting.iter().map(ToString::to_string).collect();
    ok(json!({
        "run": d.pipeline,
        "input": input,
        "output": output,
        "tasks": d.tasks,
        "attempts": d.attempts,
        "recovery_events": d.recovery_events,
        "waiting": waiting,
        "graph": graph,
    }))
}

/// `POST /runs` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    workflow: String,
    #[serde(default)]
    context: Option<Value>,
}

fn context_of(value: Option<Value>) -> Result<Context<Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Context::new()),
        Some(v @ Value::Object(_)) => Context::from_value(v).map_err(|e| ApiError::bad_request(e.to_string())),
        Some(_) => Err(ApiError::bad_request("context must be a JSON object")),
    }
}

async fn start_run(State(s): Shared, body: Result<Json<StartRun>, JsonRejection>) -> ApiResult {
    let Json(body) = body?;
    let input = context_of(body.context)?;
    let now = now();
    let id =
        s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::ops::start_run(c, &body.workflow, &input, now)??)).await?;
    created(json!({ "id": id }))
}

async fn retry_run(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = run_id(&id)?;
    let now = now();
    let new = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::ops::retry_run(c, id, now)??)).await?;
    created(json!({ "id": new, "retry_of": id }))
}

/// Runs a run action and answers with the run's status after it.
async fn act(
    s: Arc<AppState>,
    id: &str,
    action: fn(
        &mut cloacina::database::AnyConnection,
        PipelineExecutionId,
        DateTime<Utc>,
    ) -> cloacina::ops::Outcome<()>,
) -> ApiResult {
    let id = run_id(id)?;
    let now = now();
    let status =
        s.db.run_with(move |c| {
            action(c, id, now)??;
            Ok::<_, ApiError>(pipelines::get(c, id)?.map(|p| p.status))
        })
        .await?;
    ok(json!({ "id": id, "status": status }))
}

async fn cancel_run(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    act(s, &id, cloacina::ops::cancel_run).await
}

async fn pause_run(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    act(s, &id, cloacina::ops::pause_run).await
}

async fn resume_run(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    act(s, &id, cloacina::ops::resume_run).await
}

async fn workflows(State(s): Shared) -> ApiResult {
    let now = now();
    let entries = s.db.run(workflow_registry::list).await?;
    let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in entries {
        let live = cloacina::admin::is_live(&e, now);
        by_name.entry(e.workflow_name.clone()).or_default().push(json!({
            "version": e.version,
            "first_seen_at": e.first_seen_at,
            "last_seen_at": e.last_seen_at,
            "live": live,
            "graph": e.graph,
        }));
    }
    let list: Vec<Value> =
        by_name.into_iter().map(|(name, versions)| json!({ "name": name, "versions": versions })).collect();
    ok(json!({ "workflows": list }))
}

async fn list_schedules(State(s): Shared) -> ApiResult {
    let schedules = s.db.run(cron_schedules::list).await?;
    ok(json!({ "schedules": schedules }))
}

async fn schedule_detail(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = schedule_id(&id)?;
    let now = now();
    let (schedule, history) =
        s.db.run_with(move |c| {
            let schedule = cloacina::cron::get(c, id)?;
            let history = cron_executions::list_for_schedule(c, id, 20, 0)?;
            Ok::<_, ApiError>((schedule, history))
        })
        .await?;
    let next = cloacina::cron::upcoming(&schedule, 5, now)?;
    ok(json!({ "schedule": schedule, "next_fire_times": next, "history": history }))
}

/// `POST /schedules` and `PUT /schedules/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    workflow: Option<String>,
    expression: Option<String>,
    timezone: Option<String>,
    context: Option<Value>,
    catchup: Option<String>,
    max_catchup: Option<u32>,
    enabled: Option<bool>,
}

fn apply(mut config: ScheduleConfig, body: ScheduleBody) -> Result<ScheduleConfig, ApiError> {
    if let Some(expression) = body.expression {
        config.expression = expression;
    }
    if let Some(tz) = body.timezone {
        config = config.timezone(tz);
    }
    if body.context.is_some() {
        config = config.context(context_of(body.context)?);
    }
    if let Some(policy) = body.catchup {
        let policy: CatchupPolicy = policy.parse().map_err(|e| ApiError::bad_request(format!("catchup: {e}")))?;
        config = config.catchup(policy);
    }
    if let Some(n) = body.max_catchup {
        config = config.max_catchup(n);
    }
    if body.enabled == Some(false) {
        config = config.paused();
    }
    Ok(config)
}

async fn create_schedule(State(s): Shared, body: Result<Json<ScheduleBody>, JsonRejection>) -> ApiResult {
    let Json(body) = body?;
    let workflow = body.workflow.clone().ok_or_else(|| ApiError::bad_request("`workflow` is required"))?;
    let expression = body.expression.clone().ok_or_else(|| ApiError::bad_request("`expression` is required"))?;
    let config = apply(ScheduleConfig::new(workflow.clone(), expression), body)?;
    let now = now();
    let schedule =
        s.db.run_with(move |c| {
            if cloacina::ops::live_version(c, &workflow, now)?.is_none() {
                return Err(ApiError::bad_request(format!("no workflow named `{workflow}` is registered")));
            }
            Ok(cloacina::cron::create(c, &config, now)?)
        })
        .await?;
    created(json!({ "schedule": schedule }))
}

async fn update_schedule(
    State(s): Shared,
    Path(id): Path<String>,
    body: Result<Json<ScheduleBody>, JsonRejection>,
) -> ApiResult {
    let id = schedule_id(&id)?;
    let Json(body) = body?;
    if body.workflow.is_some() {
        return Err(ApiError::bad_request("a schedule's workflow cannot change: create another schedule"));
    }
    let now = now();
    let schedule =
        s.db.run_with(move |c| {
            let current = cloacina::cron::get(c, id)?;
            let config = ScheduleConfig::from_schedule(&current).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok::<_, ApiError>(cloacina::cron::update(c, id, &apply(config, body)?, now)?)
        })
        .await?;
    ok(json!({ "schedule": schedule }))
}

async fn delete_schedule(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = schedule_id(&id)?;
    if s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::cron::delete(c, id)?)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!("no cron schedule {id}")))
    }
}

async fn pause_schedule(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = schedule_id(&id)?;
    let now = now();
    let changed = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::cron::pause(c, id, now)?)).await?;
    ok(json!({ "id": id, "enabled": false, "changed": changed }))
}

async fn resume_schedule(State(s): Shared, Path(id): Path<String>) -> ApiResult {
    let id = schedule_id(&id)?;
    let now = now();
    let changed = s.db.run_with(move |c| Ok::<_, ApiError>(cloacina::cron::resume(c, id, now)?)).await?;
    ok(json!({ "id": id, "enabled": true, "changed": changed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            let Some(api_path) = path.strip_prefix("/api/v1") else { continue };
            for method in ops.as_object().expect("operations").keys() {
                documented.push((method.clone(), api_path.to_owned()));
            }
        }
        let mut routed: Vec<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }

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
