//! The HTTP API against databases a real runner wrote, on SQLite and on PostgreSQL: health,
//! runs (filters, keyset pages, detail, start, retry, cancel, pause, resume), workflows,
//! schedules, errors as JSON with 4xx statuses, the token and the cross-origin guard, body limits,
//! and a real socket.

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::runner::DefaultRunner;
use cloacina::Context;
use cloacina_server::{check_bind, router, ServerConfig};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use support::{block_on, runner, TestDb};
use tokio::sync::watch;
use tower::ServiceExt;

const TOKEN: &str = "s3cret-token-for-tests";

macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::block_on(super::$body(super::TestDb::sqlite()));
            }
            #[test]
            fn postgres() {
                super::block_on(super::$body(super::TestDb::postgres()));
            }
        }
    };
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    token: Option<&'a str>,
    origin: Option<&'a str>,
    host: &'a str,
    body: Option<String>,
}

impl<'a> Call<'a> {
    fn get(path: &'a str) -> Self {
        Self { method: "GET", path, token: None, origin: None, host: "127.0.0.1:8080", body: None }
    }

    fn post(path: &'a str, body: Value) -> Self {
        Self {
            method: "POST",
            path,
            token: Some(TOKEN),
            origin: None,
            host: "127.0.0.1:8080",
            body: Some(body.to_string()),
        }
    }

    fn with(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }

    async fn send(self, app: &Router) -> (StatusCode, Value) {
        let (status, _, value) = self.exchange(app).await;
        (status, value)
    }

    /// The status, headers and JSON body of the response.
    async fn exchange(self, app: &Router) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(self.method).uri(self.path).header("host", self.host);
        if let Some(token) = self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(origin) = self.origin {
            req = req.header("origin", origin);
        }
        let req = match self.body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let response = app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

async fn wait_status(runner: &DefaultRunner, id: &str) -> WorkflowStatus {
    let id = id.parse().unwrap();
    runner.attach(id).await.unwrap().wait_for_completion().await.unwrap().status
}

async fn runs_and_actions(t: TestDb) {
    let (open, gate) = watch::channel(false);
    let runner = runner(&t, &gate).await;
    let mut input = Context::new();
    input.insert("source", json!("test")).unwrap();
    assert_eq!(runner.execute("ok_flow", input.clone()).await.unwrap().status, WorkflowStatus::Completed);
    let failed = runner.execute("bad_flow", input.clone()).await.unwrap();
    assert_eq!(failed.status, WorkflowStatus::Failed);
    let slow = runner.execute_async("slow_flow", Context::new()).await.unwrap().execution_id();
    let app = router(t.open(), ServerConfig { token: Some(TOKEN.to_owned()), ..Default::default() });

    let (s, v) = Call::get("/healthz").send(&app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = Call::get("/readyz").send(&app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")), "{v}");

    // Lists, filters and keyset pages.
    let (s, v) = Call::get("/api/v1/runs").send(&app).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["runs"].as_array().unwrap().len(), 3);
    let (_, v) = Call::get("/api/v1/runs?status=Failed").send(&app).await;
    assert_eq!(v["runs"][0]["workflow_name"], "bad_flow");
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    let (_, v) = Call::get("/api/v1/runs?workflow=ok_flow").send(&app).await;
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    let mut seen = Vec::new();
    let mut path = "/api/v1/runs?limit=1".to_owned();
    loop {
        let (s, v) = Call::get(&path).send(&app).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        seen.extend(v["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match v["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/runs?limit=1&cursor={c}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (3, 3), "pages cover every run once: {seen:?}");
    for bad in ["status=Done", "limit=0", "limit=501", "cursor=nope", "colour=red", "since=yesterday"] {
        let (s, v) = Call::get(&format!("/api/v1/runs?{bad}")).send(&app).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{bad}: {v}");
    }

    // A run's detail.
    let failed_id = failed.execution_id.to_string();
    let (s, v) = Call::get(&format!("/api/v1/runs/{failed_id}")).send(&app).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["run"]["status"], "Failed");
    assert_eq!(v["input"]["source"], "test");
    assert_eq!(v["tasks"][0]["error_details"], "disk full");
    // Every attempt with its outcome, error, runner and times.
    let attempts = v["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{v}");
    let task_id = &v["tasks"][0]["id"];
    for (i, (outcome, error)) in [("retried", "disk almost full"), ("failed", "disk full")].into_iter().enumerate() {
        let a = &attempts[i];
        assert_eq!((&a["task_execution_id"], a["attempt"].as_u64()), (task_id, Some(i as u64 + 1)), "{a}");
        assert_eq!(a["outcome"].as_str(), Some(outcome), "{a}");
        assert!(a["error_details"].as_str().unwrap().ends_with(error), "{a}");
        assert!(a["runner"].is_string() && a["started_at"].is_string() && a["ended_at"].is_string(), "{a}");
    }
    let (s, v) = Call::get("/api/v1/runs/not-a-uuid").send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"));
    let (s, v) = Call::get(&format!("/api/v1/runs/{}", uuid::Uuid::new_v4())).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // Start a run: the token is needed, the runner picks it up.
    let start = json!({ "workflow": "ok_flow", "context": { "from": "api" } });
    let (s, v) = Call { token: None, ..Call::post("/api/v1/runs", start.clone()) }.send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, v) = Call { token: Some("wrong-token-of-the-same-size"), ..Call::post("/api/v1/runs", start.clone()) }
        .send(&app)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, v) =
        Call { origin: Some("http://evil.example"), ..Call::post("/api/v1/runs", start.clone()) }.send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "forbidden"), "a page of another origin may not act");
    let (s, v) =
        Call { origin: Some("http://127.0.0.1:8080"), ..Call::post("/api/v1/runs", start.clone()) }.send(&app).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(wait_status(&runner, v["id"].as_str().unwrap()).await, WorkflowStatus::Completed);
    let (s, v) = Call::post("/api/v1/runs", json!({ "workflow": "nope" })).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (s, v) = Call::post("/api/v1/runs", json!({ "workflow": "ok_flow", "context": [1] })).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{v}");
    let (s, v) = Call { body: Some("{not json".into()), ..Call::post("/api/v1/runs", Value::Null) }.send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{v}");
    let huge = json!({ "workflow": "ok_flow", "context": { "blob": "x".repeat(2 << 20) } });
    let (s, v) = Call::post("/api/v1/runs", huge).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"), "{v}");

    // Retry: a new run with the same input; only a failed or cancelled run.
    let (s, v) = Call::post(&format!("/api/v1/runs/{failed_id}/retry"), Value::Null).send(&app).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["retry_of"], failed_id.as_str());
    let retried = v["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_status(&runner, &retried).await, WorkflowStatus::Failed);
    let (_, v) = Call::get(&format!("/api/v1/runs/{retried}")).send(&app).await;
    assert_eq!(v["input"]["source"], "test", "the retry has the same input");
    let (_, list) = Call::get("/api/v1/runs?workflow=ok_flow").send(&app).await;
    let completed = list["runs"][0]["id"].as_str().unwrap().to_owned();
    let (s, v) = Call::post(&format!("/api/v1/runs/{completed}/retry"), Value::Null).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"), "{v}");

    // Pause, resume and cancel the waiting run.
    let slow = slow.to_string();
    let (s, v) = Call::post(&format!("/api/v1/runs/{slow}/pause"), Value::Null).send(&app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("Paused")), "{v}");
    let (s, v) = Call::post(&format!("/api/v1/runs/{slow}/pause"), Value::Null).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"), "{v}");
    let (s, v) = Call::post(&format!("/api/v1/runs/{slow}/resume"), Value::Null).send(&app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("Running")), "{v}");
    let (s, v) = Call::post(&format!("/api/v1/runs/{slow}/cancel"), Value::Null).send(&app).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("Cancelled")), "{v}");
    let (s, v) = Call::post(&format!("/api/v1/runs/{slow}/cancel"), Value::Null).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"), "{v}");
    open.send_replace(true);

    // Workflows, and an unknown route.
    let (_, v) = Call::get("/api/v1/workflows").send(&app).await;
    let ok_flow = v["workflows"].as_array().unwrap().iter().find(|w| w["name"] == "ok_flow").unwrap().clone();
    assert_eq!(ok_flow["versions"][0]["live"], true);
    assert_eq!(ok_flow["versions"][0]["graph"]["tasks"].as_array().unwrap().len(), 2);
    // A workflow's overview: its runs per status in 24 buckets, its tasks' durations, its queue.
    let (s, v) = Call::get("/api/v1/workflows/ok_flow/overview").send(&app).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["runs"].as_u64(), v["bucket_seconds"].as_i64()), (Some(2), Some(3600)), "{v}");
    let buckets = v["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    let completed: u64 = buckets.iter().filter_map(|b| b["counts"]["Completed"].as_u64()).sum();
    assert_eq!(completed, 2, "{v}");
    let tasks: Vec<(&str, u64)> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["task_name"].as_str().unwrap(), t["completed"].as_u64().unwrap()))
        .collect();
    assert_eq!(tasks, [("a", 2), ("b", 2)], "{v}");
    assert_eq!((v["queue"]["ready"].as_i64(), v["truncated"].as_bool()), (Some(0), Some(false)), "{v}");
    let (_, v) = Call::get("/api/v1/workflows/bad_flow/overview?hours=1").send(&app).await;
    let failed: u64 = v["buckets"].as_array().unwrap().iter().filter_map(|b| b["counts"]["Failed"].as_u64()).sum();
    assert_eq!(
        (failed, v["bucket_seconds"].as_i64(), v["tasks"].as_array().map(Vec::len)),
        (2, Some(150), Some(0)),
        "{v}"
    );
    for bad in ["hours=0", "hours=721", "hours=x", "days=1"] {
        let (s, v) = Call::get(&format!("/api/v1/workflows/ok_flow/overview?{bad}")).send(&app).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{bad}: {v}");
    }
    let (s, v) = Call::get("/api/v1/workflows/no_such_flow/overview").send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (s, v) = Call::get("/api/v2/nothing").send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = Call::get("/api/v1/openapi.json").send(&app).await;
    assert_eq!((s, v["openapi"].as_str()), (StatusCode::OK, Some("3.1.0")));
    runner.shutdown().await.unwrap();
}

async fn schedules(t: TestDb) {
    let (_open, gate) = watch::channel(true);
    let runner = runner(&t, &gate).await;
    let app = router(t.open(), ServerConfig { token: Some(TOKEN.to_owned()), ..Default::default() });
    for (body, why) in [
        (json!({ "workflow": "ok_flow", "expression": "not cron" }), "bad expression"),
        (json!({ "workflow": "ok_flow", "expression": "0 * * * *", "timezone": "Mars/Olympus" }), "bad zone"),
        (json!({ "expression": "0 * * * *" }), "no workflow"),
        (json!({ "workflow": "ok_flow", "expression": "0 * * * *", "catchup": "Sometimes" }), "bad policy"),
        (json!({ "workflow": "ok_flow", "expression": "0 * * * *", "colour": "red" }), "unknown field"),
        (json!({ "workflow": "ok_flow", "expression": "0 ".repeat(50_000) }), "a 100,000-character expression"),
    ] {
        let (s, v) = Call::post("/api/v1/schedules", body).send(&app).await;
        assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "{why}: {v}");
    }
    // An unknown workflow is 404, as for POST /runs.
    let (s, v) =
        Call::post("/api/v1/schedules", json!({ "workflow": "ghost", "expression": "0 * * * *" })).send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    let (_, v) = Call::get("/api/v1/schedules").send(&app).await;
    assert!(v["schedules"].as_array().unwrap().is_empty(), "nothing stored by refused requests");
    let body =
        json!({ "workflow": "ok_flow", "expression": "0 3 * * *", "timezone": "Europe/Berlin", "context": { "k": 1 } });
    let (s, v) = Call::post("/api/v1/schedules", body).send(&app).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["schedule"]["id"].as_str().unwrap().to_owned();
    let (s, v) = Call::get(&format!("/api/v1/schedules/{id}")).send(&app).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["next_fire_times"].as_array().unwrap().len(), 5);
    assert!(v["history"].as_array().unwrap().is_empty());
    let one = format!("/api/v1/schedules/{id}");
    let (s, v) = Call::post(&one, json!({ "workflow": "ok_flow" })).with("PUT").send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "bad_request"), "a schedule's workflow cannot change: {v}");
    let (s, v) = Call::post(&one, json!({ "expression": "30 4 * * *" })).with("PUT").send(&app).await;
    assert_eq!((s, v["schedule"]["cron_expression"].as_str()), (StatusCode::OK, Some("30 4 * * *")), "{v}");
    assert_eq!(v["schedule"]["timezone"], "Europe/Berlin", "other settings are kept");
    let (s, v) = Call::post(&format!("/api/v1/schedules/{id}/pause"), Value::Null).send(&app).await;
    assert_eq!((s, v["changed"].as_bool()), (StatusCode::OK, Some(true)));
    let (_, v) = Call::post(&format!("/api/v1/schedules/{id}/resume"), Value::Null).send(&app).await;
    assert_eq!(v["changed"], true);
    let delete = || Call::post(&one, Value::Null).with("DELETE");
    assert_eq!(delete().send(&app).await.0, StatusCode::NO_CONTENT);
    let (s, v) = delete().send(&app).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _) = Call::get("/api/v1/schedules/12").send(&app).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    runner.shutdown().await.unwrap();
}

async fn real_socket(t: TestDb) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cloacina_server::serve_on(listener, t.open(), ServerConfig::default(), async {
        let _ = stop.await;
    }));
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"ready\""), "{body}");
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

both_backends!(runs_and_actions_over_a_real_runners_database, runs_and_actions);
both_backends!(schedules_are_managed_and_bad_ones_refused, schedules);
both_backends!(it_serves_on_a_socket_and_stops_gracefully, real_socket);

#[path = "api/hardening.rs"]
mod hardening;
#[path = "api/uploads.rs"]
mod uploads;

#[test]
fn a_public_address_needs_a_token_and_debug_hides_it() {
    let public = "0.0.0.0:8080".parse().unwrap();
    let err = check_bind(public, None).unwrap_err().to_string();
    assert!(err.contains("--token") && err.contains("0.0.0.0:8080"), "{err}");
    assert!(check_bind(public, Some("")).is_err(), "an empty token is no token");
    assert!(check_bind(public, Some(TOKEN)).is_ok());
    assert!(check_bind("127.0.0.1:8080".parse().unwrap(), None).is_ok());
    assert!(check_bind("[::1]:8080".parse().unwrap(), None).is_ok());
    let config = ServerConfig { token: Some(TOKEN.to_owned()), ..Default::default() };
    assert!(!format!("{config:?}").contains(TOKEN));
    let _ = Arc::new(config);
}
