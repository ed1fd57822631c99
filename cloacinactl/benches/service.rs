//! The service measured end to end (`cargo bench -p cloacinactl --bench service`), on SQLite and
//! on PostgreSQL, against a real `cloacinactl serve` child (API, dashboard and worker in one
//! process; release build), with the repository's example package:
//!
//! 1. **Upload to first run.** From the upload's response to the first `POST /api/v1/runs` the
//!    server accepts for that package (nothing else of it is live: the previous version was
//!    deleted first, and refused runs are retried every 5 ms): the first package on a fresh host
//!    (its dependencies compiled too), new versions (compiled on arrival, dependencies cached),
//!    and deleted versions uploaded again (library cached).
//! 2. **API latency under load.** 50 clients, each 40 requests alternating `GET /api/v1/runs` and
//!    `GET /api/v1/runs/{id}` (one connection per request), while the worker runs runs that take
//!    a second each and new ones start every 20 ms.
//! 3. **The event stream.** 300 runs started at once from four clients and followed on
//!    `/api/v1/events`: events delivered per second, and the lag from each change's recorded time
//!    to its arrival at the client.
//!
//! PostgreSQL: `CLOACINA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! in a schema of its own, dropped at the end.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/http.rs"]
mod http_client;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_client::{free_port, http, next_event, sse};
use serde_json::Value;

const TOKEN: &str = "service-bench-token-0123456789";
const CLIENTS: usize = 50;
const REQUESTS_PER_CLIENT: usize = 40;
const EVENT_RUNS: usize = 300;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The example package at `version`, packed.
fn archive(scratch: &Path, version: &str) -> Vec<u8> {
    let from = workspace().join("examples/packages/simple-packaged");
    let to = scratch.join(format!("source-{version}")).join("simple-packaged");
    for rel in ["package.toml", "Cargo.toml", "build.rs", "src/lib.rs"] {
        let text = std::fs::read_to_string(from.join(rel)).unwrap();
        let text = match rel {
            "package.toml" => text.replace("version = \"0.1.0\"", &format!("version = \"{version}\"")),
            "Cargo.toml" => text.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1),
            _ => text,
        };
        std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
        std::fs::write(to.join(rel), text).unwrap();
    }
    cloacina::packages::source::pack(&to).unwrap().1
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn ctl(url: &str, schema: Option<&str>, cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloacinactl"));
    cmd.args(["--database-url", url])
        .env("CLOACINA_PACKAGE_CACHE", cache)
        .env("CLOACINA_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL");
    if let Some(schema) = schema {
        cmd.args(["--schema", schema]);
    }
    cmd
}

fn serve(url: &str, schema: Option<&str>, cache: &Path, log: &Path) -> Server {
    let migrated = ctl(url, schema, cache).args(["db", "migrate"]).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let port = free_port();
    let child = ctl(url, schema, cache)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--max-concurrent-tasks", "64"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let server = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_status(port, "GET", "/readyz", b"") != 200 {
        assert!(Instant::now() < deadline, "the server did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn http_status(port: u16, method: &str, path: &str, body: &[u8]) -> u16 {
    match std::net::TcpStream::connect(("127.0.0.1", port)) {
        Ok(_) => http(port, method, path, Some(TOKEN), body).0,
        Err(_) => 0,
    }
}

fn start_run(port: u16, context: &str) -> (u16, Value) {
    let body = format!(r#"{{"workflow": "data_processing", "context": {context}}}"#);
    http(port, "POST", "/api/v1/runs", Some(TOKEN), body.as_bytes())
}

/// Milliseconds from the upload's response to the first run the server accepts.
fn upload_to_first_run(port: u16, bytes: &[u8]) -> (f64, String) {
    let (status, body) = http(port, "POST", "/api/v1/packages", Some(TOKEN), bytes);
    assert!(status == 201 || status == 200, "upload: {status} {body}");
    let uploaded = Instant::now();
    let deadline = uploaded + Duration::from_secs(300);
    loop {
        if start_run(port, "{}").0 == 201 {
            return (uploaded.elapsed().as_secs_f64() * 1e3, body["package"]["id"].as_str().unwrap().to_owned());
        }
        assert!(Instant::now() < deadline, "no run accepted within 300 s of the upload");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deletes package `id` and waits until the server refuses new runs of its workflow.
fn delete(port: u16, id: &str) {
    assert_eq!(http(port, "DELETE", &format!("/api/v1/packages/{id}"), Some(TOKEN), b"").0, 200);
    while start_run(port, "{}").0 == 201 {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spread(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    format!("median {:.0} ms (min {:.0}, max {:.0}, n {})", at(0.5), ms[0], ms[ms.len() - 1], ms.len())
}

fn percentiles(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    format!("p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n {})", at(0.5), at(0.99), ms[ms.len() - 1], ms.len())
}

fn uploads(port: u16, scratch: &Path, major: u32, first: bool) {
    let archives: Vec<Vec<u8>> = (0..6).map(|i| archive(scratch, &format!("{major}.0.{i}"))).collect();
    let (cold, mut id) = upload_to_first_run(port, &archives[0]);
    if first {
        println!("  upload -> first run, first package on a fresh host (dependencies compiled): {cold:.0} ms");
    }
    let mut new = Vec::new();
    for bytes in &archives[1..] {
        delete(port, &id);
        let (ms, next) = upload_to_first_run(port, bytes);
        new.push(ms);
        id = next;
    }
    println!("  upload -> first run, new version (compiled on arrival): {}", spread(new));
    let mut cached = Vec::new();
    for bytes in archives[1..].iter().rev() {
        delete(port, &id);
        let (ms, next) = upload_to_first_run(port, bytes);
        cached.push(ms);
        id = next;
    }
    println!("  upload -> first run, version uploaded again (library cached): {}", spread(cached));
}

fn api_latency(port: u16) {
    let ids: Vec<String> =
        (0..100).map(|_| start_run(port, r#"{"delay_ms": 1000}"#).1["id"].as_str().unwrap().to_owned()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut started = 0;
            while !stop.load(Ordering::Relaxed) {
                if start_run(port, r#"{"delay_ms": 1000}"#).0 == 201 {
                    started += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            started
        })
    };
    let lists = Arc::new(Mutex::new(Vec::new()));
    let details = Arc::new(Mutex::new(Vec::new()));
    let ids = Arc::new(ids);
    let began = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (lists, details, ids) = (lists.clone(), details.clone(), ids.clone());
            std::thread::spawn(move || {
                for r in 0..REQUESTS_PER_CLIENT {
                    let detail = (c + r) % 2 == 1;
                    let path = if detail {
                        format!("/api/v1/runs/{}", ids[(c * 7 + r) % ids.len()])
                    } else {
                        "/api/v1/runs?limit=50".to_owned()
                    };
                    let at = Instant::now();
                    let (status, _) = http(port, "GET", &path, None, b"");
                    let ms = at.elapsed().as_secs_f64() * 1e3;
                    assert_eq!(status, 200, "{path}");
                    if detail { &details } else { &lists }.lock().unwrap().push(ms);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let started = feeder.join().unwrap();
    let running =
        http(port, "GET", "/api/v1/runs?status=Running&limit=500", None, b"").1["runs"].as_array().map_or(0, Vec::len);
    println!(
        "  API under {CLIENTS} clients ({} requests in {:.1} s; {started} runs started meanwhile, {running} running at the end):",
        CLIENTS * REQUESTS_PER_CLIENT,
        took.as_secs_f64()
    );
    println!("    GET /api/v1/runs?limit=50: {}", percentiles(lists.lock().unwrap().clone()));
    println!("    GET /api/v1/runs/{{id}}:     {}", percentiles(details.lock().unwrap().clone()));
}

fn events(port: u16) {
    // Let the previous step's runs end, so the stream carries this step's runs.
    let deadline = Instant::now() + Duration::from_secs(120);
    while http(port, "GET", "/api/v1/runs?status=Running&limit=1", None, b"").1["runs"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        assert!(Instant::now() < deadline, "the earlier runs did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
    let mut stream = sse(port, &format!("/api/v1/events?since={since}"));
    let starters: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                (0..EVENT_RUNS / 4)
                    .map(|_| start_run(port, "{}").1["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ours: std::collections::HashSet<String> = starters.into_iter().flat_map(|s| s.join().unwrap()).collect();
    let mut done = std::collections::HashSet::new();
    let (mut count, mut lags, mut first, mut last) = (0usize, Vec::new(), None, Instant::now());
    while done.len() < ours.len() {
        let (_, event) = next_event(&mut stream);
        let (now, arrived) = (chrono::Utc::now(), Instant::now());
        let run = event["run_id"].as_str().unwrap_or_default();
        if !ours.contains(run) {
            continue;
        }
        first.get_or_insert(arrived);
        last = arrived;
        count += 1;
        if let Some(at) = event["at"].as_str().and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok()) {
            lags.push((now - at.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0) as f64 / 1e3);
        }
        if event["kind"] == "run"
            && ["Completed", "Failed", "Cancelled"].contains(&event["status"].as_str().unwrap_or(""))
        {
            done.insert(run.to_owned());
        }
    }
    let span = last.duration_since(first.unwrap()).as_secs_f64().max(1e-3);
    println!(
        "  events: {count} for {EVENT_RUNS} runs in {span:.2} s = {:.0} events/s; lag from the recorded change to the client: {}",
        count as f64 / span,
        percentiles(lags)
    );
}

fn main() {
    let scratch = workspace().join("target").join(format!("bench-service-{}", std::process::id()));
    let cache = scratch.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let pg = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("bench_service_{}", std::process::id());
    let backends: [(&str, String, Option<String>, u32); 2] = [
        ("SQLite", format!("sqlite://{}", scratch.join("bench.db").display()), None, 2),
        ("PostgreSQL", pg.clone(), Some(schema.clone()), 3),
    ];
    for (i, (name, url, schema, major)) in backends.iter().enumerate() {
        println!("{name}:");
        let server = serve(url, schema.as_deref(), &cache, &scratch.join(format!("{name}.log")));
        uploads(server.port, &scratch, *major, i == 0);
        api_latency(server.port);
        events(server.port);
        drop(server);
    }
    let parsed = cloacina::database::DatabaseUrl::parse(&pg).unwrap();
    if let Ok(mut conn) = cloacina::database::establish(&parsed, &Default::default()) {
        let _ = diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
