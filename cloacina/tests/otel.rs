//! OpenTelemetry export (feature `otel`): a real run's spans arrive at an OTLP/HTTP collector (a
//! small HTTP server in this test that keeps every request body), on SQLite and PostgreSQL.
//!
//! `cargo test -p cloacina --features otel --test otel`

#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};

use cloacina::executor::{PipelineExecutor, WorkflowStatus};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::telemetry::otlp::{OtlpExport, OtlpProtocol};
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::Context;
use serde_json::Value;
use tracing_subscriber::prelude::*;

/// Every request body the collector received.
type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// An OTLP/HTTP endpoint: answers each `POST` with an empty JSON success and keeps its body.
fn collector() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return; // the client closed the connection
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    keep.lock().unwrap().push(body);
                    let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                    stream.write_all(answer.as_bytes()).unwrap();
                }
            });
        }
    });
    (addr, received)
}

/// The exporter and collector this test binary shares (one global subscriber per process).
fn export() -> &'static (OtlpExport, Received) {
    static EXPORT: OnceLock<(OtlpExport, Received)> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let (addr, received) = collector();
        let export = OtlpExport::new(&format!("http://{addr}/v1/traces"), OtlpProtocol::HttpJson, "otel-test").unwrap();
        tracing_subscriber::registry().with(export.layer()).init();
        (export, received)
    })
}

/// A received span: name, span id, parent span id, attributes as strings.
type Span = (String, String, String, serde_json::Map<String, Value>);

/// Every span the collector received, and the service names of their resources.
fn spans(received: &Received) -> (Vec<Span>, Vec<String>) {
    let (mut spans, mut services) = (Vec::new(), Vec::new());
    for body in received.lock().unwrap().iter() {
        let doc: Value = serde_json::from_slice(body).unwrap();
        for resource in doc["resourceSpans"].as_array().unwrap() {
            for attr in resource["resource"]["attributes"].as_array().unwrap() {
                if attr["key"] == "service.name" {
                    services.push(attr["value"]["stringValue"].as_str().unwrap().to_owned());
                }
            }
            for scope in resource["scopeSpans"].as_array().unwrap() {
                for span in scope["spans"].as_array().unwrap() {
                    let mut attrs = serde_json::Map::new();
                    for attr in span["attributes"].as_array().into_iter().flatten() {
                        let value = &attr["value"];
                        let text = value["stringValue"].as_str().map(str::to_owned).unwrap_or_else(|| {
                            value["intValue"].as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
                        });
                        attrs.insert(attr["key"].as_str().unwrap().to_owned(), Value::String(text));
                    }
                    let field = |k: &str| span[k].as_str().unwrap_or_default().to_owned();
                    spans.push((field("name"), field("spanId"), field("parentSpanId"), attrs));
                }
            }
        }
    }
    (spans, services)
}

async fn run_and_export(url: String, schema: Option<String>, workflow: &str) {
    let (export, received) = export();
    let flow = Workflow::builder(workflow)
        .task(TaskSpec::new("extract", &[]), |ctx: Context<Value>| async move { Ok(ctx) })
        .task(TaskSpec::new("load", &["extract"]), |ctx: Context<Value>| async move { Ok(ctx) })
        .build()
        .unwrap();
    let config = DefaultRunnerConfig { schema, ..Default::default() };
    let runner = DefaultRunner::builder(url).config(config).workflow(flow).build().await.unwrap();
    let result = runner.execute(workflow, Context::new()).await.unwrap();
    assert_eq!(result.status, WorkflowStatus::Completed);
    runner.shutdown().await.unwrap();
    export.flush().unwrap();

    let (spans, services) = spans(received);
    assert!(services.iter().all(|s| s == "otel-test") && !services.is_empty(), "{services:?}");
    let run = result.execution_id.to_string();
    let pipelines: Vec<_> = spans.iter().filter(|s| s.0 == "pipeline" && s.3["pipeline"] == run.as_str()).collect();
    assert_eq!(pipelines.len(), 2, "one pipeline span per attempt: {spans:?}");
    assert!(pipelines.iter().all(|p| p.3["workflow"] == workflow && p.2.is_empty()), "{pipelines:?}");
    let mut tasks: Vec<&str> = spans
        .iter()
        .filter(|s| s.0 == "task" && pipelines.iter().any(|p| p.1 == s.2))
        .map(|s| {
            assert_eq!(s.3["attempt"], "1", "{s:?}");
            assert!(s.3["id"].as_str().is_some_and(|id| id.len() == 36), "{s:?}");
            s.3["task"].as_str().unwrap()
        })
        .collect();
    tasks.sort_unstable();
    assert_eq!(tasks, ["extract", "load"], "each attempt's span is a child of its pipeline span");
}

fn block_on(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(f);
}

#[test]
fn spans_reach_the_collector_sqlite() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("otel_{}.db", uuid::Uuid::new_v4().simple()));
    block_on(run_and_export(format!("sqlite://{}", file.display()), None, "otel_sqlite"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

#[test]
fn spans_reach_the_collector_postgres() {
    use diesel::connection::SimpleConnection;
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("otel_{}", uuid::Uuid::new_v4().simple());
    block_on(run_and_export(url.clone(), Some(schema.clone()), "otel_postgres"));
    let parsed = cloacina::database::DatabaseUrl::parse(&url).unwrap();
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).unwrap();
    conn.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).unwrap();
}

#[test]
fn bad_settings_are_refused_clearly() {
    let err = OtlpExport::new("not a url", OtlpProtocol::HttpJson, "x").unwrap_err();
    assert!(err.to_string().starts_with("OpenTelemetry export:"), "{err}");
    assert_eq!("http/json".parse(), Ok(OtlpProtocol::HttpJson));
    assert_eq!("http/protobuf".parse(), Ok(OtlpProtocol::HttpProtobuf));
    let err = "grpc".parse::<OtlpProtocol>().unwrap_err().to_string();
    assert!(err.contains("\"grpc\" is not supported: use http/protobuf or http/json"), "{err}");
}
