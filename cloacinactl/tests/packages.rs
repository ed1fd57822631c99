//! Workflow packages end to end, as real child processes on SQLite and on a PostgreSQL schema:
//! the repository's example package (`examples/packages/simple-packaged`) is packed by
//! `cloacinactl package pack`, compiled and loaded by `cloacinactl daemon`, and run; it is
//! replaced mid-run, removed, joined by broken and conflicting archives; a task panics; the
//! daemon is SIGKILLed mid-run and a new one finishes the run. The same package uploaded to
//! `serve` runs there (one process on either backend; an API and two workers on PostgreSQL, one
//! worker SIGKILLed mid-run).
//!
//! Compiled packages are cached in `target/package-cache` (by content hash), so each test
//! package compiles once per machine and source change, not once per test.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/http.rs"]
mod http_client;
use http_client::{free_port, http, next_event, sse, sse_resumed};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{nanos}", std::process::id())
}

fn scratch(name: &str) -> PathBuf {
    let dir = workspace().join("target/test-packages").join(format!("{name}_{}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloacinactl"));
    cmd.env("CLOACINA_PACKAGE_CACHE", workspace().join("target/package-cache"))
        .env("RUST_LOG", "info")
        .env_remove("DATABASE_URL")
        .env_remove("CLOACINA_SCHEMA");
    cmd
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The example package's source, copied so that a variant can change it: `version` in both
/// manifests, `name` in package.toml, and the release its runs report.
fn variant(name: &str, version: &str, release: &str) -> PathBuf {
    let from = workspace().join("examples/packages/simple-packaged");
    let to = scratch("source").join("simple-packaged");
    for rel in ["package.toml", "Cargo.toml", "build.rs", "src/lib.rs"] {
        let text = std::fs::read_to_string(from.join(rel)).unwrap();
        let text = match rel {
            "package.toml" => text
                .replace("name = \"simple-packaged\"", &format!("name = \"{name}\""))
                .replace("version = \"0.1.0\"", &format!("version = \"{version}\"")),
            "Cargo.toml" => text.replacen("version = \"0.1.0\"", &format!("version = \"{version}\""), 1),
            "src/lib.rs" => {
                text.replace("const RELEASE: &str = \"one\";", &format!("const RELEASE: &str = \"{release}\";"))
            }
            _ => text,
        };
        std::fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
        std::fs::write(to.join(rel), text).unwrap();
    }
    to
}

/// Packs `source` with `cloacinactl package pack`; the archive's bytes.
fn pack(source: &Path) -> Vec<u8> {
    let out = scratch("packed").join("package.cloacina");
    ok(ctl().args(["package", "pack"]).arg(source).arg("--out").arg(&out).output().unwrap(), "pack");
    std::fs::read(out).unwrap()
}

struct Archives {
    v1: Vec<u8>,
    v2: Vec<u8>,
    /// v1's name and version with other content.
    reused: Vec<u8>,
    /// Another package defining the same workflow.
    claimer: Vec<u8>,
}

fn archives() -> &'static Archives {
    static ARCHIVES: OnceLock<Archives> = OnceLock::new();
    ARCHIVES.get_or_init(|| Archives {
        v1: pack(&workspace().join("examples/packages/simple-packaged")),
        v2: pack(&variant("simple-packaged", "0.2.0", "two")),
        reused: pack(&variant("simple-packaged", "0.1.0", "three")),
        claimer: pack(&variant("other-package", "1.0.0", "one")),
    })
}

/// Writes `bytes` to `dir/name` as a daemon should see it: beside, then renamed in.
fn drop_in(dir: &Path, name: &str, bytes: &[u8]) {
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, bytes).unwrap();
    std::fs::rename(partial, dir.join(name)).unwrap();
}

struct Db {
    url: String,
    schema: Option<String>,
}

impl Db {
    fn cmd(&self) -> Command {
        let mut cmd = ctl();
        cmd.arg("--database-url").arg(&self.url);
        if let Some(s) = &self.schema {
            cmd.args(["--schema", s]);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = ok(self.run(args), &format!("{args:?}"));
        serde_json::from_str::<Value>(&text).unwrap()["data"].clone()
    }

    fn start(&self, context: &str) -> String {
        let out = ok(self.run(&["runs", "start", "data_processing", "--context", context]), "runs start");
        out.split_whitespace().nth(2).unwrap().to_owned()
    }

    fn show(&self, id: &str) -> Value {
        self.json(&["runs", "show", id, "--json"])
    }

    fn status(&self, id: &str) -> String {
        self.show(id)["run"]["status"].as_str().unwrap_or_default().to_owned()
    }

    /// The recorded packages; none while the daemon has not created the database yet.
    fn packages(&self) -> Vec<Value> {
        let out = self.run(&["package", "list", "--json"]);
        if !out.status.success() {
            return Vec::new();
        }
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["data"].as_array().cloned().unwrap_or_default()
    }

    fn package_status(&self, name: &str, version: &str) -> Option<String> {
        self.packages()
            .into_iter()
            .find(|p| p["package_name"] == name && p["version"] == version)
            .and_then(|p| p["status"].as_str().map(str::to_owned))
    }

    /// `serve` on `port` with `token` and `extra` arguments, once it answers.
    fn serve(&self, port: u16, token: &str, log: &Path, extra: &[&str]) -> Reaped {
        let child = self
            .cmd()
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .args(if extra.contains(&"--poll-interval") { &[][..] } else { &["--poll-interval", "0.2"][..] })
            .args(["--lease-duration", "3", "--shutdown-timeout", "10"])
            .args(extra)
            .env("CLOACINA_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let child = Reaped(child);
        until("the server to answer", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        child
    }

    fn daemon(&self, dir: &Path, log: &Path, extra: &[&str]) -> Child {
        self.cmd()
            .arg("daemon")
            .arg("--packages")
            .arg(dir)
            .args(["--poll-interval", "0.2", "--lease-duration", "3", "--shutdown-timeout", "10"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }
}

/// A child process killed when dropped, so a failing test leaves no server holding connections.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (up to three minutes: a first compile of a package) until `check` holds.
fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn task_status(run: &Value, task: &str) -> String {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"]["task_name"] == task)
        .map(|t| t["task"]["status"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

fn sigterm(child: &mut Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "the daemon stops gracefully on SIGTERM: {exit:?}");
}

/// Load, run, panic, replace mid-run, conflicting and broken archives, remove.
fn lifecycle(db: &Db) {
    let a = archives();
    let (dir, log) = (scratch("watched"), scratch("log").join("daemon.log"));
    drop_in(&dir, "broken.cloacina", b"BZh9 this is not a package");
    drop_in(&dir, "etl.cloacina", &a.v1);
    let mut daemon = db.daemon(&dir, &log, &[]);
    until("v1 loaded", || db.package_status("simple-packaged", "0.1.0").as_deref() == Some("loaded"));
    let logged = std::fs::read_to_string(&log).unwrap();
    let broken: Vec<&str> = logged.lines().filter(|l| l.contains("broken.cloacina")).collect();
    assert_eq!(broken.len(), 1, "a broken archive is one error line naming its file: {logged}");
    assert!(broken[0].contains("not a package archive"), "{logged}");

    // A run completes on the packaged code.
    let first = db.start(r#"{"day": "2026-12-07"}"#);
    until("the first run", || db.status(&first) == "Completed");
    assert_eq!(db.show(&first)["output"]["final_report"]["release"], "one");

    // A panicking task fails its attempts with the panic's message; the daemon lives on.
    let panicking = db.start(r#"{"panic": true}"#);
    until("the panicking run to fail", || db.status(&panicking) == "Failed");
    let shown = db.show(&panicking).to_string();
    assert!(shown.contains("collect_data was told to panic"), "{shown}");

    // Replaced mid-run: the run in flight finishes on v1, the next run starts on v2.
    let slow = db.start(r#"{"delay_ms": 3000}"#);
    until("the slow run's first task to run", || task_status(&db.show(&slow), "collect_data") == "Running");
    drop_in(&dir, "etl.cloacina", &a.v2);
    until("v2 loaded", || db.package_status("simple-packaged", "0.2.0").as_deref() == Some("loaded"));
    until("v1 recorded removed", || db.package_status("simple-packaged", "0.1.0").as_deref() == Some("removed"));
    let next = db.start("{}");
    until("both runs", || db.status(&slow) == "Completed" && db.status(&next) == "Completed");
    assert_eq!(db.show(&slow)["output"]["final_report"]["release"], "one", "the run in flight stays on v1");
    assert_eq!(db.show(&next)["output"]["final_report"]["release"], "two", "a new run starts on v2");

    // A version reused with other content, and a second package claiming the workflow: refused.
    drop_in(&dir, "reused.cloacina", &a.reused);
    drop_in(&dir, "claimer.cloacina", &a.claimer);
    until("both refusals", || {
        let logged = std::fs::read_to_string(&log).unwrap();
        logged.contains("already recorded with other contents") && logged.contains("is already defined by package")
    });
    assert_eq!(db.package_status("other-package", "1.0.0"), None, "a refused package is not recorded as loaded");
    let still = db.start("{}");
    until("a run after the refusals", || db.status(&still) == "Completed");
    assert_eq!(db.show(&still)["output"]["final_report"]["release"], "two");

    // Removed: no new runs (a conflict, exit code 4); the record says removed.
    std::fs::remove_file(dir.join("etl.cloacina")).unwrap();
    until("v2 removed", || db.package_status("simple-packaged", "0.2.0").as_deref() == Some("removed"));
    let refused = db.run(&["runs", "start", "data_processing"]);
    assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("starts no new runs"));
    sigterm(&mut daemon);
}

/// SIGKILL mid-run: a new daemon (another runner) finishes the run after the claim lapses.
fn killed_mid_run(db: &Db) {
    let (dir, log) = (scratch("watched"), scratch("log").join("daemon.log"));
    drop_in(&dir, "etl.cloacina", &archives().v1);
    let mut first = db.daemon(&dir, &log, &[]);
    until("v1 loaded", || db.package_status("simple-packaged", "0.1.0").as_deref() == Some("loaded"));
    let run = db.start(r#"{"delay_ms": 2000}"#);
    until("the task to run", || task_status(&db.show(&run), "collect_data") == "Running");
    first.kill().unwrap();
    first.wait().unwrap();
    assert_ne!(db.status(&run), "Completed");
    let mut second = db.daemon(&dir, &scratch("log").join("second.log"), &[]);
    until("the run to be finished by the second daemon", || db.status(&run) == "Completed");
    let shown = db.show(&run);
    assert_eq!(shown["output"]["final_report"]["release"], "one");
    assert!(!shown["recovery_events"].as_array().unwrap().is_empty(), "the lapsed claim is recorded: {shown}");
    sigterm(&mut second);
}

const TOKEN: &str = "an-upload-token-of-test";

/// `serve` (API, dashboard and a worker in one process): packages uploaded over HTTP are loaded
/// by its worker and run; a new version serves new runs; a deleted package starts none.
fn served(db: &Db) {
    ok(db.run(&["db", "migrate"]), "migrate");
    let a = archives();
    let port = free_port();
    let token = TOKEN;
    let log = scratch("log").join("serve.log");
    // Polling every ten minutes: the worker in the process is told of uploads and deletions at
    // once (on SQLite, where no announcement crosses the database, too).
    let mut serving = db.serve(port, token, &log, &["--mode", "all", "--poll-interval", "600"]);
    let t = Some(token);

    // Uploading runs code on the workers: the token is needed.
    assert_eq!(http(port, "POST", "/api/v1/packages", None, &a.v1).0, 401);
    let (status, body) = http(port, "POST", "/api/v1/packages", t, b"BZh9 this is not a package");
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not a package archive"), "{body}");
    let (status, body) = http(port, "POST", "/api/v1/packages", t, &a.v1);
    assert_eq!((status, &body["created"]), (201, &Value::Bool(true)), "{body}");
    let v1 = body["package"]["id"].as_str().unwrap().to_owned();
    let (status, again) = http(port, "POST", "/api/v1/packages", t, &a.v1);
    assert_eq!((status, again["package"]["id"].as_str()), (200, Some(v1.as_str())), "the same bytes are one package");
    assert_eq!(http(port, "POST", "/api/v1/packages", t, &a.reused).0, 409, "a version names one content");

    let package_status =
        |id: &str| http(port, "GET", &format!("/api/v1/packages/{id}"), None, b"").1["package"]["status"].clone();
    until("v1 loaded by the worker", || package_status(&v1) == "loaded");
    let run = |context: &str| {
        let body = format!(r#"{{"workflow": "data_processing", "context": {context}}}"#);
        let (status, started) = http(port, "POST", "/api/v1/runs", t, body.as_bytes());
        assert_eq!(status, 201, "{started}");
        started["id"].as_str().unwrap().to_owned()
    };
    let release = |id: &str| {
        let mut shown = Value::Null;
        until("the run to complete", || {
            shown = http(port, "GET", &format!("/api/v1/runs/{id}"), None, b"").1;
            shown["run"]["status"] == "Completed"
        });
        shown["output"]["final_report"]["release"].clone()
    };
    // Follow the run on the event stream (opened before it starts) until it completes.
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut stream = sse(port, &format!("/api/v1/events?since={}", before.replace('+', "%2B")));
    let first = run(r#"{"day": "2026-12-07", "delay_ms": 600}"#);
    let mut kinds = Vec::new();
    let cursor = loop {
        let (id, event) = next_event(&mut stream);
        if event["run_id"] != first.as_str() {
            continue;
        }
        kinds.push(format!(
            "{}:{}:{}",
            event["kind"].as_str().unwrap(),
            event["task"].as_str().unwrap_or(""),
            event["status"].as_str().unwrap()
        ));
        if event["kind"] == "run" && event["status"] == "Completed" {
            break id;
        }
    };
    // The slow task is seen running; every task's completion comes before the run's. (A change
    // shorter than the stream's poll shows as the state it ended in.)
    assert!(kinds.contains(&"task:collect_data:Running".to_owned()), "{kinds:?}");
    for task in ["collect_data", "process_data", "generate_report"] {
        assert!(kinds.contains(&format!("task:{task}:Completed")), "{kinds:?}");
    }
    assert_eq!(release(&first), "one");
    // Reconnecting with the last cursor: nothing of that run is delivered again.
    let mut resumed = sse_resumed(port, &format!("/api/v1/runs/{first}/events"), &cursor);
    resumed.get_ref().set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut line = String::new();
    let again = std::io::BufRead::read_line(&mut resumed, &mut line);
    assert!(again.is_err() || !line.contains("\"run_id\""), "an event was delivered again: {line}");

    // A new version, uploaded with the CLI (the token from the environment only): live for new
    // runs once loaded; the old one is recorded removed.
    let server = format!("http://127.0.0.1:{port}");
    let file = scratch("upload").join("v2.cloacina");
    std::fs::write(&file, &a.v2).unwrap();
    let cli = |args: &[&str], token: Option<&str>| {
        let mut cmd = ctl();
        cmd.args(args).args(["--server", &server]).env_remove("CLOACINA_TOKEN");
        if let Some(token) = token {
            cmd.env("CLOACINA_TOKEN", token);
        }
        cmd.output().unwrap()
    };
    let unauthorised = cli(&["package", "upload", file.to_str().unwrap()], None);
    assert_eq!(unauthorised.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unauthorised.stderr).contains("set CLOACINA_TOKEN"));
    let uploaded = ok(cli(&["package", "upload", file.to_str().unwrap(), "--json"], t), "package upload");
    let uploaded: Value = serde_json::from_str(&uploaded).unwrap();
    let v2 = uploaded["data"]["package"]["id"].as_str().unwrap().to_owned();
    until("v2 loaded and v1 removed", || package_status(&v2) == "loaded" && package_status(&v1) == "removed");
    assert_eq!(release(&run("{}")), "two");
    let listed = ok(cli(&["package", "list"], None), "package list --server");
    assert!(listed.contains("0.2.0") && listed.contains("loaded"), "{listed}");
    let inspected = ok(cli(&["package", "inspect", &v2], None), "package inspect --server");
    assert!(inspected.contains("workflows: data_processing"), "{inspected}");
    assert!(inspected.contains(": serving"), "the worker serving it is shown: {inspected}");
    let missing = cli(&["package", "inspect", "00000000-0000-4000-8000-000000000000"], None);
    assert_eq!(missing.status.code(), Some(3), "not found");
    let unreachable = ctl().args(["package", "list", "--server", "http://127.0.0.1:1"]).output().unwrap();
    assert_eq!(unreachable.status.code(), Some(5), "{}", String::from_utf8_lossy(&unreachable.stderr));

    // Deleted: no new runs once the worker saw it.
    let deleted = ok(cli(&["package", "delete", &v2], t), "package delete");
    assert!(deleted.contains("start no new runs"), "{deleted}");
    assert_eq!(package_status(&v2), "removed");
    until("new runs to be refused", || {
        let (status, _) = http(port, "POST", "/api/v1/runs", t, br#"{"workflow": "data_processing"}"#);
        status == 409
    });
    let missing = "00000000-0000-4000-8000-000000000000";
    assert_eq!(http(port, "DELETE", &format!("/api/v1/packages/{missing}"), t, b"").0, 404);
    sigterm(&mut serving.0);
}

/// One `serve --mode api` and two `serve --mode worker` processes on one PostgreSQL database: an
/// upload through the API is loaded by both workers (told by NOTIFY: they poll only every ten
/// minutes); a worker SIGKILLed mid-run leaves its run to the other, and the API's event stream
/// shows both attempts and the run's end; a package deleted while a run is in flight lets the run
/// finish and starts no more.
#[cfg(feature = "postgres")]
fn scaled_out(db: &Db) {
    ok(db.run(&["db", "migrate"]), "migrate");
    let (api, w1, w2) = (free_port(), free_port(), free_port());
    let logs = scratch("log");
    let mut api_process = db.serve(api, TOKEN, &logs.join("api.log"), &["--mode", "api"]);
    let mut workers = std::collections::HashMap::new();
    for (name, port) in [("worker-one", w1), ("worker-two", w2)] {
        let log = logs.join(format!("{name}.log"));
        // Polling every ten minutes: uploads and deletions reach them through NOTIFY.
        let args = ["--mode", "worker", "--runner-name", name, "--poll-interval", "600"];
        workers.insert(name, db.serve(port, TOKEN, &log, &args));
    }
    let t = Some(TOKEN);
    assert_eq!(http(w1, "GET", "/api/v1/runs", None, b"").0, 404, "a worker serves no API");
    assert_eq!(http(w1, "GET", "/readyz", None, b"").0, 200);

    let (status, body) = http(api, "POST", "/api/v1/packages", t, &archives().v1);
    assert_eq!(status, 201, "{body}");
    let id = body["package"]["id"].as_str().unwrap().to_owned();
    // `package publish` validates, packs and uploads a source directory: the same archive, so
    // the same package.
    let published = ctl()
        .args(["package", "publish", workspace().join("examples/packages/simple-packaged").to_str().unwrap()])
        .args(["--server", &format!("http://127.0.0.1:{api}")])
        .env("CLOACINA_TOKEN", TOKEN)
        .output()
        .unwrap();
    let said = ok(published, "package publish");
    assert!(said.contains(&format!("already stored: simple-packaged 0.1.0 as {id}")), "{said}");
    // Loaded, and serving on both workers (each records the versions it offers).
    let states = |id: &str| {
        let detail = http(api, "GET", &format!("/api/v1/packages/{id}"), None, b"").1;
        let workers = detail["workers"].as_array().cloned().unwrap_or_default();
        (
            detail["package"]["status"].clone(),
            workers.iter().map(|w| (w["runner"].clone(), w["state"].clone())).collect::<Vec<_>>(),
        )
    };
    until("the package serving on both workers", || {
        states(&id)
            == (
                Value::from("loaded"),
                vec![
                    (Value::from("worker-one"), Value::from("serving")),
                    (Value::from("worker-two"), Value::from("serving")),
                ],
            )
    });
    let start = |context: &str| {
        let body = format!(r#"{{"workflow": "data_processing", "context": {context}}}"#);
        let (status, started) = http(api, "POST", "/api/v1/runs", t, body.as_bytes());
        assert_eq!(status, 201, "{started}");
        started["id"].as_str().unwrap().to_owned()
    };
    let show = |id: &str| http(api, "GET", &format!("/api/v1/runs/{id}"), None, b"").1;
    let claimer =
        |run: &Value| {
            run["tasks"].as_array().unwrap().iter().find(|t| t["task_name"] == "collect_data").and_then(|t| {
                (t["status"] == "Running").then(|| t["claimed_by"].as_str().unwrap_or_default().to_owned())
            })
        };

    // Deleted while a run is in flight: the run finishes, no new run starts.
    let in_flight = start(r#"{"delay_ms": 1500}"#);
    until("the in-flight task to run", || claimer(&show(&in_flight)).is_some());
    assert_eq!(http(api, "DELETE", &format!("/api/v1/packages/{id}"), t, b"").0, 200);
    until("the in-flight run to complete", || show(&in_flight)["run"]["status"] == "Completed");
    assert_eq!(show(&in_flight)["output"]["final_report"]["release"], "one");
    until("new runs to be refused", || {
        http(api, "POST", "/api/v1/runs", t, br#"{"workflow": "data_processing"}"#).0 == 409
    });
    let (_, loads) = states(&id);
    assert!(loads.iter().all(|(_, state)| state != "serving"), "a deleted package serves nowhere: {loads:?}");

    // A new version, then SIGKILL the worker running its task: the other finishes the run once
    // the claim lapses.
    let (status, body) = http(api, "POST", "/api/v1/packages", t, &archives().v2);
    assert_eq!(status, 201, "{body}");
    let v2 = body["package"]["id"].as_str().unwrap().to_owned();
    until("v2 loaded", || {
        http(api, "GET", &format!("/api/v1/packages/{v2}"), None, b"").1["package"]["status"] == "loaded"
    });
    let mut slow = None;
    until("a run to be accepted", || {
        let (status, started) =
            http(api, "POST", "/api/v1/runs", t, br#"{"workflow": "data_processing", "context": {"delay_ms": 4000}}"#);
        slow = started["id"].as_str().map(str::to_owned);
        status == 201
    });
    let slow = slow.unwrap();
    // The run followed on the API's event stream while workers run it and one of them dies.
    let mut stream = sse(api, &format!("/api/v1/runs/{slow}/events"));
    let mut running_on = None;
    until("the slow task to run", || {
        running_on = claimer(&show(&slow));
        running_on.is_some()
    });
    let victim = running_on.unwrap();
    let mut killed = workers.remove(victim.as_str()).unwrap_or_else(|| panic!("claimed by {victim}"));
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    until("the run finished by the surviving worker", || show(&slow)["run"]["status"] == "Completed");
    let finished = show(&slow);
    assert!(!finished["recovery_events"].as_array().unwrap().is_empty(), "the lapsed claim is recorded: {finished}");
    assert_eq!(finished["output"]["final_report"]["release"], "two");
    let mut seen = Vec::new();
    loop {
        let (_, event) = next_event(&mut stream);
        assert_eq!(event["run_id"], slow.as_str(), "a run's stream carries only that run");
        let end = event["kind"] == "run" && event["status"] == "Completed";
        seen.push(event);
        if end {
            break;
        }
    }
    let collect_attempts: std::collections::BTreeSet<u64> = seen
        .iter()
        .filter(|e| e["task"] == "collect_data" && e["status"] == "Running")
        .filter_map(|e| e["attempt"].as_u64())
        .collect();
    assert!(collect_attempts.len() >= 2, "the killed attempt and the one that finished are both seen: {seen:?}");
    for task in ["collect_data", "process_data", "generate_report"] {
        let done = seen.iter().position(|e| e["task"] == task && e["status"] == "Completed");
        assert!(done.is_some_and(|at| at < seen.len() - 1), "{task} completes before the run: {seen:?}");
    }
    for (_, mut worker) in workers {
        sigterm(&mut worker.0);
    }
    sigterm(&mut api_process.0);
}

/// Signed packages from the CLI: `signing-key generate`, `package pack --sign`, and a server with
/// `--require-signed` that takes the signed archive (`package upload` sends ARCHIVE.sig) and
/// refuses it unsigned; a server asked to require signatures without a key does not start.
fn signed(db: &Db) {
    ok(db.run(&["db", "migrate"]), "migrate");
    let dir = scratch("signed");
    let key = dir.join("release.key");
    let said = ok(ctl().args(["signing-key", "generate", "--out"]).arg(&key).output().unwrap(), "generate");
    assert!(said.contains("release.key.pub"), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the private key is private");
    }
    let again = ctl().args(["signing-key", "generate", "--out"]).arg(&key).output().unwrap();
    assert_eq!(again.status.code(), Some(2), "an existing key is not overwritten");
    let archive = dir.join("etl.cloacina");
    let packed = ctl()
        .args(["package", "pack"])
        .arg(workspace().join("examples/packages/simple-packaged"))
        .arg("--out")
        .arg(&archive)
        .arg("--sign")
        .arg(&key)
        .output()
        .unwrap();
    assert!(ok(packed, "pack --sign").contains("signed by key"));
    assert!(dir.join("etl.cloacina.sig").is_file());

    let log = scratch("log").join("serve.log");
    let no_key = db.cmd().args(["serve", "--require-signed"]).output().unwrap();
    assert_eq!(no_key.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("needs at least one --trusted-key"));
    let port = free_port();
    let public = format!("{}.pub", key.display());
    let mut serving = db.serve(port, TOKEN, &log, &["--require-signed", "--trusted-key", &public]);
    let server = format!("http://127.0.0.1:{port}");
    let upload = |path: &Path| {
        ctl()
            .args(["package", "upload"])
            .arg(path)
            .args(["--server", &server])
            .env("CLOACINA_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let unsigned = dir.join("unsigned.cloacina");
    std::fs::copy(&archive, &unsigned).unwrap();
    let refused = upload(&unsigned);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unsigned"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(ok(upload(&archive), "signed upload").contains("uploaded simple-packaged 0.1.0"));
    sigterm(&mut serving.0);
}

/// How many successive versions the hot-reload test uploads.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
const HOT_VERSIONS: usize = 100;

/// The example package at versions 1.0.0 .. 1.0.99, each reporting its own release `r<i>`:
/// packed once per test binary (both backends upload the same bytes, so each is compiled once).
#[cfg(all(feature = "sqlite", feature = "postgres"))]
fn hot_versions() -> &'static Vec<Vec<u8>> {
    static VERSIONS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    VERSIONS.get_or_init(|| {
        (0..HOT_VERSIONS).map(|i| pack(&variant("simple-packaged", &format!("1.0.{i}"), &format!("r{i}")))).collect()
    })
}

/// What `/proc` says of a process: resident memory (KiB), threads, open file descriptors.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
fn footprint(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
    (field("VmRSS:"), field("Threads:"), fds)
}

/// A long-lived `serve` given 100 successive versions of one package while runs execute: every
/// run completes on the version it started with, and once the runs end the worker's threads and
/// open files are back where they were after ten versions (a retired version's library stops its
/// runtime); what stays is each library's mapped code, measured and printed.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
fn hot_reload(db: &Db) {
    ok(db.run(&["db", "migrate"]), "migrate");
    let versions = hot_versions();
    let port = free_port();
    let log = scratch("log").join("serve.log");
    let serving = db.serve(port, TOKEN, &log, &["--mode", "all"]);
    let pid = serving.0.id();
    let t = Some(TOKEN);
    let status =
        |id: &str| http(port, "GET", &format!("/api/v1/packages/{id}"), None, b"").1["package"]["status"].clone();
    let ended = |id: &str| {
        let run = http(port, "GET", &format!("/api/v1/runs/{id}"), None, b"").1;
        (run["run"]["status"] == "Completed").then(|| run["output"]["final_report"]["release"].clone())
    };
    let mut runs: Vec<(String, String)> = Vec::new();
    let mut previous: Option<String> = None;
    let mut warm = None;
    for (i, archive) in versions.iter().enumerate() {
        let (code, body) = http(port, "POST", "/api/v1/packages", t, archive);
        assert_eq!(code, 201, "version {i}: {body}");
        let id = body["package"]["id"].as_str().unwrap().to_owned();
        until(&format!("version {i} live"), || {
            status(&id) == "loaded" && previous.as_deref().is_none_or(|p| status(p) == "removed")
        });
        // A run on this version, still going while the next one is uploaded and loaded.
        let body = br#"{"workflow": "data_processing", "context": {"delay_ms": 300}}"#;
        let (code, started) = http(port, "POST", "/api/v1/runs", t, body);
        assert_eq!(code, 201, "{started}");
        runs.push((started["id"].as_str().unwrap().to_owned(), format!("r{i}")));
        previous = Some(id);
        if i == 9 {
            let (id, _) = runs.last().unwrap();
            until("the tenth version's run", || ended(id).is_some());
            warm = Some(footprint(pid));
        }
    }
    for (id, release) in &runs {
        let mut got = None;
        until("every run to complete", || {
            got = ended(id);
            got.is_some()
        });
        assert_eq!(got.unwrap(), release.as_str(), "run {id} completes on the version it started with");
    }
    let (warm_rss, warm_threads, warm_fds) = warm.unwrap();
    // The versions whose runs ended are let go at the worker's next poll: their threads stop.
    // Bounded: one live version's runtime and a few idle pool threads may come and go (a version
    // whose library kept its threads would add two per version here, 180 in all).
    let bound = warm_threads + 4;
    let deadline = Instant::now() + Duration::from_secs(60);
    while footprint(pid).1 > bound && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (rss, threads, fds) = footprint(pid);
    let per_version = rss.saturating_sub(warm_rss) / (HOT_VERSIONS as u64 - 10);
    println!(
        "hot reload: after 10 versions rss {warm_rss} KiB, {warm_threads} threads, {warm_fds} fds; \
         after {HOT_VERSIONS}: rss {rss} KiB ({per_version} KiB per version), {threads} threads, {fds} fds"
    );
    assert!(threads <= bound, "threads grow with versions: {warm_threads} -> {threads}");
    assert!(fds <= warm_fds + 4, "open files grow with versions: {warm_fds} -> {fds}");
    assert!(per_version < 4096, "each retired version keeps {per_version} KiB resident");
    let mut serving = serving;
    sigterm(&mut serving.0);
}

#[cfg(feature = "sqlite")]
fn sqlite() -> Db {
    Db { url: format!("sqlite://{}", scratch("db").join("app.db").display()), schema: None }
}

#[cfg(feature = "postgres")]
fn with_postgres(test: fn(&Db)) {
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("packages_{}", unique());
    let db = Db { url: url.clone(), schema: Some(schema.clone()) };
    let result = std::panic::catch_unwind(|| test(&db));
    let parsed = cloacina::database::DatabaseUrl::parse(&url).unwrap();
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
    )
    .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn a_package_lives_through_a_daemon_on_sqlite() {
    lifecycle(&sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn a_package_lives_through_a_daemon_on_postgres() {
    with_postgres(lifecycle);
}

#[cfg(feature = "sqlite")]
#[test]
fn an_uploaded_package_runs_on_the_server_on_sqlite() {
    served(&sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn an_uploaded_package_runs_on_the_server_on_postgres() {
    with_postgres(served);
}

#[cfg(feature = "postgres")]
#[test]
fn an_api_and_two_workers_share_one_postgres_database() {
    with_postgres(scaled_out);
}

#[cfg(feature = "sqlite")]
#[test]
fn a_killed_daemons_run_is_finished_by_the_next_on_sqlite() {
    killed_mid_run(&sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn a_killed_daemons_run_is_finished_by_the_next_on_postgres() {
    with_postgres(killed_mid_run);
}

/// `package new` scaffolds packages that validate and pack as they are; `package build` shows
/// cargo's errors for a package that does not compile; `--once` runs what is due and exits.
#[cfg(feature = "sqlite")]
#[test]
fn scaffold_build_errors_and_once() {
    let root = scratch("scaffold");
    for lang in ["rust", "python"] {
        let dir = root.join(format!("etl_{lang}"));
        ok(ctl().args(["package", "new", "etl", "--language", lang, "--dir"]).arg(&dir).output().unwrap(), "new");
        let said = ok(ctl().args(["package", "validate"]).arg(&dir).output().unwrap(), "validate");
        assert!(said.contains("is a valid package"), "{said}");
        ok(
            ctl()
                .args(["package", "pack"])
                .arg(&dir)
                .arg("--out")
                .arg(root.join(format!("{lang}.cloacina")))
                .output()
                .unwrap(),
            "pack",
        );
    }
    // The Rust scaffold runs as it is, with --once.
    let db = sqlite();
    let watched = root.join("watched");
    std::fs::create_dir_all(&watched).unwrap();
    std::fs::copy(root.join("rust.cloacina"), watched.join("etl.cloacina")).unwrap();
    let once = |db: &Db| {
        db.cmd()
            .arg("daemon")
            .arg("--packages")
            .arg(&watched)
            .args(["--once", "--poll-interval", "0.1"])
            .output()
            .unwrap()
    };
    ok(once(&db), "daemon --once (load)");
    let id = ok(db.run(&["runs", "start", "etl", "--context", r#"{"day": "2026-12-07"}"#]), "start");
    let id = id.split_whitespace().nth(2).unwrap().to_owned();
    ok(once(&db), "daemon --once (run)");
    let shown = db.show(&id);
    assert_eq!(shown["run"]["status"], "Completed", "{shown}");
    assert_eq!(shown["output"]["loaded"], 3, "{shown}");

    // A compile error: cargo's first errors, shown by `package build`, reported by the daemon.
    let broken = root.join("etl_rust");
    let lib = broken.join("src/lib.rs");
    std::fs::write(
        &lib,
        std::fs::read_to_string(&lib).unwrap().replace("Ok(())\n    }\n}", "Ok(()) not_rust\n    }\n}"),
    )
    .unwrap();
    let out = ctl().args(["package", "build"]).arg(&broken).output().unwrap();
    assert!(!out.status.success());
    let archive = root.join("broken.cloacina");
    ok(ctl().args(["package", "pack"]).arg(&broken).arg("--out").arg(&archive).output().unwrap(), "pack broken");
    let out = ctl().args(["package", "inspect"]).arg(&archive).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did not compile") && err.contains("error"), "{err}");

    // A library built for another interface version is refused before any other call, saying
    // both versions (a crate of no dependencies that exports only the version function).
    let other = root.join("other-abi");
    std::fs::create_dir_all(other.join("src")).unwrap();
    let manifest = "[package]\nname = \"other-abi\"\nversion = \"0.1.0\"\n\n[metadata]\nlanguage = \"rust\"\n";
    std::fs::write(other.join("package.toml"), manifest).unwrap();
    let cargo = "[package]\nname = \"other-abi\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[lib]\ncrate-type = [\"cdylib\"]\n";
    std::fs::write(other.join("Cargo.toml"), cargo).unwrap();
    std::fs::write(
        other.join("src/lib.rs"),
        "#[no_mangle]\npub extern \"C\" fn cloacina_plugin_abi_version() -> u32 {\n    2\n}\n",
    )
    .unwrap();
    let archive = root.join("other-abi.cloacina");
    ok(ctl().args(["package", "pack"]).arg(&other).arg("--out").arg(&archive).output().unwrap(), "pack other-abi");
    let out = ctl().args(["package", "inspect"]).arg(&archive).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("speaks interface version 2; this host speaks version 1"), "{err}");
}

#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn a_long_lived_server_takes_a_hundred_versions_on_sqlite() {
    hot_reload(&sqlite());
}

#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn a_long_lived_server_takes_a_hundred_versions_on_postgres() {
    with_postgres(hot_reload);
}

#[cfg(feature = "sqlite")]
#[test]
fn signed_packages_from_the_cli_on_sqlite() {
    signed(&sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn signed_packages_from_the_cli_on_postgres() {
    with_postgres(signed);
}
