//! `cloacinactl runs|schedules|workflows` against databases a real runner has written, on
//! SQLite and on a PostgreSQL schema.

#![allow(missing_docs, clippy::unwrap_used)]

use std::process::{Command, Output};

use cloacina::cron::ScheduleConfig;
use cloacina::dal::pipeline_executions::{self as pipelines, NewPipeline};
use cloacina::dal::task_executions::NewTask;
use cloacina::executor::WorkflowExecutor;
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};
use cloacina::workflow::Workflow;
use cloacina::{Context, TaskError};
use serde_json::{json, Value};

struct Db {
    url: String,
    schema: Option<String>,
}

impl Db {
    fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloacinactl"));
        cmd.args(args).env("DATABASE_URL", &self.url).env_remove("CLOACINA_SCHEMA");
        if let Some(s) = &self.schema {
            cmd.args(["--schema", s]);
        }
        cmd.output().expect("run cloacinactl")
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `--json` command's document, checked for the versioned envelope: its `data`.
    fn json(&self, args: &[&str]) -> Value {
        let doc: Value = serde_json::from_str(&self.ok(args)).unwrap();
        assert_eq!(doc["version"], 1, "{doc}");
        doc["data"].clone()
    }

    /// Runs a command that must fail with exit code `code`; returns its stderr.
    fn exits(&self, args: &[&str], code: i32) -> String {
        let out = self.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    /// Runs a command that must fail with `expected` on the first line of stderr (our errors are
    /// one line; clap adds a usage hint after its own).
    fn fails(&self, args: &[&str], expected: &str) {
        let out = self.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.lines().next().unwrap_or_default().contains(expected), "{args:?}: {err}");
    }
}

struct Written {
    context_file: String,
    completed: String,
    failed: String,
    waiting: String,
    schedule: String,
}

/// A runner writes a completed run, a failed run, a schedule; a run of a version no runner has waits.
fn write_with_a_runner(db: &Db) -> Written {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let ok = Workflow::builder("cli_ok")
            .simple_task("extract", &[], |ctx: Context<Value>| async move { Ok(ctx) })
            .simple_task("load", &["extract"], |ctx: Context<Value>| async move { Ok(ctx) })
            .build()
            .unwrap();
        let failing = Workflow::builder("cli_fail")
            // Task code's error text holds terminal commands (set the title, clear the screen).
            .simple_task("boom", &[], |_: Context<Value>| async move {
                Err(TaskError::fatal("disk full\u{1b}]0;PWNED\u{7}\u{1b}[2J"))
            })
            .build()
            .unwrap();
        let config = DefaultRunnerConfig { schema: db.schema.clone(), ..Default::default() };
        let runner = DefaultRunner::builder(db.url.as_str())
            .config(config)
            .workflow(ok)
            .workflow(failing)
            .build()
            .await
            .unwrap();
        let completed = runner.execute("cli_ok", Context::new()).await.unwrap().execution_id;
        let failed = runner.execute("cli_fail", Context::new()).await.unwrap().execution_id;
        let schedule = ScheduleConfig::new("cli_ok", "0 3 * * *").timezone("Europe/Berlin");
        let schedule = runner.create_schedule(schedule).await.unwrap().id;
        let waiting = runner
            .database()
            .run(|c| {
                let task = NewTask::of(&cloacina::workflow::TaskSpec::new("extract", &[]), true);
                let new = NewPipeline {
                    workflow_name: "cli_ok".into(),
                    workflow_version: "0123456789abcdef".into(),
                    input: json!({}),
                    tasks: vec![task],
                };
                pipelines::create(
                    c,
                    cloacina::models::PipelineExecutionId::new(),
                    &new,
                    cloacina::database::UniversalTimestamp::now(),
                )
            })
            .await
            .unwrap();
        runner.shutdown().await.unwrap();
        let context_file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-dbs")
            .join(format!("ctx_{}.json", uuid_like()));
        Written {
            context_file: context_file.display().to_string(),
            completed: completed.to_string(),
            failed: failed.to_string(),
            waiting: waiting.to_string(),
            schedule: schedule.to_string(),
        }
    })
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}_{nanos}", std::process::id())
}

fn operate(db: &Db) {
    // Nothing there yet: a SQLite file that does not exist is not created; a schema is empty.
    let missing = if db.schema.is_some() { "holds no Cloacina tables" } else { "no SQLite database at" };
    db.fails(&["runs", "list"], missing);
    let w = write_with_a_runner(db);

    // runs list: filters, pagination, JSON and the table.
    let all = db.json(&["runs", "list", "--json"])["runs"].clone();
    assert_eq!(all.as_array().unwrap().len(), 3);
    let failed = db.json(&["runs", "list", "--status", "failed", "--json"])["runs"].clone();
    assert_eq!(failed[0]["run"]["id"], w.failed.as_str());
    assert_eq!(failed.as_array().unwrap().len(), 1);
    let runs = |args: &[&str]| db.json(args)["runs"].as_array().unwrap().len();
    assert_eq!(runs(&["runs", "list", "--workflow", "cli_ok", "--json"]), 2);
    assert_eq!(runs(&["runs", "list", "--since", "1h", "--json"]), 3);
    assert_eq!(runs(&["runs", "list", "--since", "2099-01-01", "--json"]), 0);
    assert_eq!(db.json(&["runs", "list", "--limit", "2", "--json"])["next_offset"], 2);
    let page2 = db.json(&["runs", "list", "--limit", "2", "--offset", "2", "--json"])["runs"].clone();
    assert_eq!(page2.as_array().unwrap().len(), 1);
    assert_eq!(page2[0]["run"]["id"], w.completed.as_str(), "oldest last");
    let waiting: Vec<_> = all.as_array().unwrap().iter().filter(|r| !r["waiting"].is_null()).collect();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["run"]["id"], w.waiting.as_str());
    let table = db.ok(&["runs", "list"]);
    assert!(
        table.starts_with("ID") && table.contains("cli_fail") && table.contains("Pending (waiting for version)"),
        "{table}"
    );
    assert!(db.ok(&["runs", "list", "--limit", "1"]).contains("--offset 1"));
    db.fails(&["runs", "list", "--status", "exploded"], "unknown status `exploded`");
    db.fails(&["runs", "list", "--since", "yesterday"], "invalid --since `yesterday`");
    db.fails(&["runs", "list", "--limit", "0"], "invalid value '0' for '--limit");

    // runs show: tasks, attempts, errors; why a run waits.
    let shown = db.json(&["runs", "show", &w.failed, "--json"]);
    assert_eq!(shown["run"]["status"], "Failed");
    assert_eq!(shown["tasks"][0]["task"]["task_name"], "boom");
    assert_eq!(shown["tasks"][0]["attempt_count"], 1);
    let attempt = &shown["tasks"][0]["attempts"][0];
    assert_eq!((&attempt["attempt"], &attempt["outcome"]), (&json!(1), &json!("failed")), "{shown}");
    assert!(
        attempt["error_details"].as_str().unwrap().contains("disk full") && attempt["runner"].is_string(),
        "{shown}"
    );
    assert!(shown["tasks"][0]["duration_ms"].is_i64() && shown["duration_ms"].is_i64(), "{shown}");
    assert!(shown["tasks"][0]["task"]["error_details"].as_str().unwrap().contains("disk full"));
    assert_eq!(shown["input"], json!({}));
    let ok = db.json(&["runs", "show", &w.completed, "--json"]);
    assert!(ok["output"].is_object(), "{ok}");
    let text = db.ok(&["runs", "show", &w.failed]);
    assert!(text.contains("status     Failed") && text.contains("disk full") && text.contains("ATTEMPT"), "{text}");
    assert!(!text.contains(['\u{1b}', '\u{7}']), "the terminal is sent no command: {text:?}");
    assert!(text.contains("\\u{1b}]0;PWNED\\u{7}"), "it is shown escaped: {text}");
    let text = db.ok(&["runs", "show", &w.waiting]);
    assert!(text.contains("waiting for a runner with version 0123456789abcdef of workflow `cli_ok`"), "{text}");
    db.fails(&["runs", "show", "not-a-uuid"], "invalid run id `not-a-uuid`");
    db.fails(&["runs", "show", "00000000-0000-0000-0000-000000000000"], "no run 00000000");
    db.exits(&["runs", "show", "00000000-0000-0000-0000-000000000000"], 3);
    db.exits(&["runs", "show", "not-a-uuid"], 2);

    // runs cancel.
    assert!(db.ok(&["runs", "cancel", &w.waiting]).contains("cancelled run"));
    db.fails(&["runs", "cancel", &w.waiting], "is Cancelled: cancel applies to Pending, Running or Paused runs");
    assert!(db.exits(&["runs", "cancel", &w.completed], 4).contains("is Completed"));
    let cancelled = db.json(&["runs", "show", &w.waiting, "--json"]);
    assert_eq!(cancelled["tasks"][0]["task"]["status"], "Cancelled");
    assert_eq!(cancelled["tasks"][0]["attempt_count"], 0, "a task that never ran made no attempt");
    assert_eq!(cancelled["tasks"][0]["attempts"], json!([]));
    assert!(db.ok(&["runs", "show", &w.waiting]).contains("0/"), "0 attempts in the table too");

    // runs start, retry, pause, resume, prune.
    std::fs::write(&w.context_file, r#"{"day": "2026-11-26"}"#).unwrap();
    let started = db.json(&["runs", "start", "cli_ok", "--context", &format!("@{}", w.context_file), "--json"]);
    let started = started["id"].as_str().unwrap().to_owned();
    let shown = db.json(&["runs", "show", &started, "--json"]);
    assert_eq!(
        (shown["run"]["status"].as_str(), shown["input"]["day"].as_str()),
        (Some("Pending"), Some("2026-11-26"))
    );
    assert!(db.ok(&["runs", "pause", &started]).contains("paused run"));
    assert!(db.exits(&["runs", "pause", &started], 4).contains("is Paused"));
    assert!(db.ok(&["runs", "resume", &started]).contains("resumed run"));
    db.exits(&["runs", "start", "no_such_flow"], 3);
    assert!(db.exits(&["runs", "start", "cli_ok", "--context", "[1]"], 2).contains("JSON object"));
    assert!(db.exits(&["runs", "start", "cli_ok", "--context", "@/nonexistent.json"], 2).contains("cannot read"));
    let retried = db.json(&["runs", "retry", &w.failed, "--json"]);
    assert_eq!(retried["retry_of"], w.failed.as_str());
    db.exits(&["runs", "retry", &w.completed], 4);
    assert!(db.ok(&["runs", "cancel", &started]).contains("cancelled run"));
    let retried = retried["id"].as_str().unwrap().to_owned();
    assert!(db.ok(&["runs", "cancel", &retried]).contains("cancelled run"));
    let dry = db.json(&["runs", "prune", "--older-than", "0s", "--status", "failed", "--dry-run", "--json"]);
    assert_eq!((dry["runs"].as_i64(), dry["dry_run"].as_bool()), (Some(1), Some(true)));
    db.exits(&["runs", "prune", "--older-than", "0s", "--status", "running"], 2);
    let pruned = db.json(&["runs", "prune", "--older-than", "0s", "--status", "failed", "--json"]);
    assert_eq!(pruned["runs"], 1);
    db.exits(&["runs", "show", &w.failed], 3);

    // schedules.
    let list = db.json(&["schedules", "list", "--json"]);
    assert_eq!(list[0]["id"], w.schedule.as_str());
    let created =
        db.json(&["schedules", "create", "cli_ok", "*/5 * * * *", "--timezone", "Asia/Tokyo", "--paused", "--json"]);
    assert_eq!((created["timezone"].as_str(), created["enabled"].as_bool()), (Some("Asia/Tokyo"), Some(false)));
    let created = created["id"].as_str().unwrap().to_owned();
    let updated = db.json(&["schedules", "update", &created, "--expression", "0 9 * * 1", "--json"]);
    assert_eq!(
        (updated["cron_expression"].as_str(), updated["timezone"].as_str()),
        (Some("0 9 * * 1"), Some("Asia/Tokyo"))
    );
    assert!(db.exits(&["schedules", "create", "cli_ok", "61 * * * *"], 2).contains("invalid cron expression"));
    db.exits(&["schedules", "create", "nope", "0 * * * *"], 3);
    db.exits(&["schedules", "update", "00000000-0000-0000-0000-000000000000", "--expression", "0 * * * *"], 3);
    assert!(db.ok(&["schedules", "delete", &created]).contains("deleted schedule"));
    let show = db.json(&["schedules", "show", &w.schedule, "--count", "3", "--json"]);
    assert_eq!(show["upcoming"].as_array().unwrap().len(), 3);
    assert!(show["upcoming"][0].as_str().unwrap().contains("T02:00:00Z"), "03:00 Berlin in winter: {show}");
    let text = db.ok(&["schedules", "show", &w.schedule]);
    assert!(text.contains("0 3 * * * (Europe/Berlin)") && text.contains("next fire times"), "{text}");
    assert!(db.ok(&["schedules", "pause", &w.schedule]).contains("paused schedule"));
    assert!(db.ok(&["schedules", "pause", &w.schedule]).contains("already paused"));
    assert!(db.ok(&["schedules", "list"]).contains("paused"));
    assert_eq!(db.json(&["schedules", "show", &w.schedule, "--json"])["schedule"]["enabled"], false);
    assert!(db.ok(&["schedules", "resume", &w.schedule]).contains("resumed schedule"));
    assert!(db.ok(&["schedules", "list"]).contains("active"));
    assert!(db.ok(&["schedules", "delete", &w.schedule]).contains("deleted schedule"));
    db.fails(&["schedules", "delete", &w.schedule], "no cron schedule");
    db.fails(&["schedules", "pause", &w.schedule], "no cron schedule");
    db.fails(&["schedules", "show", "x"], "invalid schedule id `x`");
    db.fails(&["schedules", "show", &w.schedule, "--count", "4000000000"], "invalid value '4000000000'");

    // workflows.
    let wfs = db.json(&["workflows", "list", "--json"]);
    let names: Vec<&str> =
        wfs.as_array().unwrap().iter().map(|w| w["workflow"]["workflow_name"].as_str().unwrap()).collect();
    assert!(names.contains(&"cli_ok") && names.contains(&"cli_fail"), "{names:?}");
    assert!(
        wfs.as_array()
            .unwrap()
            .iter()
            .all(|w| w["live"] == false && w["workflow"]["version"].as_str().unwrap().len() == 16),
        "the runner that registered them stopped: no version is live: {wfs}"
    );
    let table = db.ok(&["workflows", "list"]);
    assert!(table.starts_with("WORKFLOW") && table.contains("cli_ok"), "{table}");
}

#[cfg(feature = "sqlite")]
#[test]
fn operate_runs_schedules_and_workflows_on_sqlite() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.canonicalize().unwrap().join(format!("operate_{}.db", uuid_like()));
    operate(&Db { url: format!("sqlite://{}", path.display()), schema: None });
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[cfg(feature = "postgres")]
#[test]
fn operate_runs_schedules_and_workflows_on_a_postgres_schema() {
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("operate_{}", uuid_like());
    let db = Db { url: url.clone(), schema: Some(schema.clone()) };
    // The schema does not exist yet: the CLI says so instead of creating it.
    let result = std::panic::catch_unwind(|| operate(&db));
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

/// `db copy` from the command line: SQLite → a PostgreSQL schema, with its refusals.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn db_copy_from_sqlite_to_a_postgres_schema() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.canonicalize().unwrap().join(format!("{name}_{}.db", uuid_like()));
    let (source_path, blank_path) = (file("copy_from"), file("copy_blank"));
    let source = Db { url: format!("sqlite://{}", source_path.display()), schema: None };
    let pg = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("copy_{}", uuid_like());
    let target = Db { url: pg.clone(), schema: Some(schema.clone()) };
    let result = std::panic::catch_unwind(|| {
        let w = write_with_a_runner(&source);
        target.ok(&["db", "migrate"]);
        fn copy<'a>(from: &'a str, to: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
            let mut args = vec!["db", "copy", "--from", from, "--to", to];
            args.extend_from_slice(extra);
            args
        }
        let from = source.url.as_str();
        // The runner stopped gracefully (its row is gone); another one says it is alive.
        let url = cloacina::database::DatabaseUrl::parse(from).unwrap();
        let mut conn = cloacina::database::establish(&url, &Default::default()).unwrap();
        let alive = cloacina::dal::runners::NewRunner {
            name: "busy-runner",
            host_id: "boot",
            host_name: "box",
            pid: 1,
            versions: &Default::default(),
        };
        cloacina::dal::runners::register(&mut conn, alive, cloacina::database::UniversalTimestamp::now()).unwrap();
        let refused = source.exits(&copy(from, &pg, &["--to-schema", &schema]), 4);
        assert!(refused.contains("live runner (runner busy-runner on box") && refused.contains("--force"), "{refused}");
        let summary = source.json(&copy(from, &pg, &["--to-schema", &schema, "--force", "--json"]));
        assert_eq!(summary["tables"].as_array().unwrap().len(), cloacina::database::schema::TABLES.len(), "{summary}");
        assert!(summary["rows"].as_u64().unwrap() > 10 && summary["verified"] == true, "{summary}");
        assert!(!summary["to"].as_str().unwrap().contains("password"), "{summary}");
        // The runs are on PostgreSQL now.
        let runs = target.json(&["runs", "list", "--json"])["runs"].clone();
        assert_eq!(runs.as_array().unwrap().len(), 3);
        assert!(target.ok(&["runs", "show", &w.failed]).contains("disk full"));
        // Again: the target is not empty any more.
        let again = source.exits(&copy(from, &pg, &["--to-schema", &schema, "--force"]), 4);
        assert!(again.contains("is not empty"), "{again}");
        // A target nobody migrated, and the source itself.
        let blank = format!("sqlite://{}", blank_path.display());
        let missing = source.exits(&copy(from, &blank, &["--force"]), 3);
        assert!(missing.contains("no SQLite database at") && !blank_path.exists(), "{missing}");
        std::fs::File::create(&blank_path).unwrap();
        let unmigrated = source.exits(&copy(from, &blank, &["--force"]), 2);
        assert!(unmigrated.contains("run `cloacinactl db migrate` on it first"), "{unmigrated}");
        let same = source.exits(&copy(from, from, &[]), 2);
        assert!(same.contains("the same database"), "{same}");
    });
    let parsed = cloacina::database::DatabaseUrl::parse(&pg).unwrap();
    let mut conn = cloacina::database::establish(&parsed, &Default::default()).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"),
    )
    .unwrap();
    for path in [&source_path, &blank_path] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
