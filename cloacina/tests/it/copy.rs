//! `admin::copy` (`cloacinactl db copy`): a database a real runner wrote (completed, failed,
//! retrying, paused and cancelled runs, cron and trigger history, the registry, a package) goes
//! SQLite → PostgreSQL → SQLite and arrives identical, every column of every row; a pipeline cut
//! off by a killed runner on SQLite finishes on PostgreSQL; bad targets are refused untouched.

// The cross-backend tests need both backends; a single-backend build keeps only the refusals.
#![cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(unused_imports, dead_code))]

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::crash::fast_recovery;
use crate::dal_pipelines::{pipeline, versions};
use crate::engine::{config, quick_retry};
use crate::harness::{wait_until, worker, TestDb};
use crate::workflows::crashy;
use cloacina::dal::{
    cron_executions, pipeline_executions as pipelines, recovery_events, task_executions as tasks, trigger_executions,
    trigger_schedules, workflow_packages,
};
use cloacina::database::UniversalTimestamp;
use cloacina::executor::PipelineExecutor;
use cloacina::models::{PipelineExecutionId, PipelineStatus, TaskStatus};
use cloacina::ops::copy::{self, CopyError, CopyOptions};
use cloacina::runner::DefaultRunner;
use cloacina::workflow::{TaskSpec, Workflow};
use cloacina::{Context, TaskError};

fn copy_all(from: &TestDb, to: &TestDb, force: bool) -> Result<copy::CopyReport, CopyError> {
    let mut calls = 0;
    let report =
        copy::copy(&mut from.conn(), &mut to.conn(), CopyOptions { force }, chrono::Utc::now(), &mut |_| calls += 1);
    if let Ok(r) = &report {
        assert!(calls >= r.tables.iter().filter(|t| t.rows > 0).count(), "progress after every page");
    }
    report
}

fn workflows(gate: &watch::Receiver<bool>) -> Vec<Workflow> {
    let ok = Workflow::builder("copy_ok")
        .task(TaskSpec::new("a", &[]), |mut ctx: Context<Value>| async move {
            ctx.insert_or_update("a", json!({"n": 1, "list": [1, 2.5, "x"], "nested": {"z": true, "b": null}}));
            Ok(ctx)
        })
        .task(TaskSpec::new("b", &["a"]), |ctx: Context<Value>| async move { Ok(ctx) })
        .build()
        .unwrap();
    let mut once = TaskSpec::new("boom", &[]);
    once.retry.max_attempts = 1;
    let bad = Workflow::builder("copy_bad")
        .task(once, |_ctx: Context<Value>| async move { Err(TaskError::fatal("disk full ünïcödé")) })
        .build()
        .unwrap();
    let mut later = TaskSpec::new("flaky", &[]);
    later.retry = quick_retry(3);
    later.retry.initial_delay = Duration::from_secs(3_600);
    later.retry.max_delay = Duration::from_secs(3_600);
    let flaky = Workflow::builder("copy_flaky")
        .task(later, |_ctx: Context<Value>| async move { Err(TaskError::retryable("try again later")) })
        .build()
        .unwrap();
    let gate = gate.clone();
    // Two tasks, so a paused run stays Paused (its second task waits to be claimed).
    let gated = Workflow::builder("copy_gated")
        .task(TaskSpec::new("waits", &[]), move |ctx: Context<Value>| {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                Ok(ctx)
            }
        })
        .task(TaskSpec::new("after", &["waits"]), |ctx: Context<Value>| async move { Ok(ctx) })
        .build()
        .unwrap();
    vec![ok, bad, flaky, gated]
}

/// The first task (by its workflow's order) of `run`: the one with no dependencies.
fn task_of(db: &TestDb, run: PipelineExecutionId) -> cloacina::models::TaskExecution {
    let all = tasks::list_for_pipeline(&mut db.conn(), run).unwrap();
    let first = ["a", "boom", "flaky", "waits", "victim"];
    all.into_iter().find(|t| first.contains(&t.task_name.as_str())).unwrap()
}

/// Fills `db` the way a real runner does, plus cron, trigger and package rows.
fn populate(db: &TestDb) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (open, gate) = watch::channel(false);
        let runner = workflows(&gate)
            .into_iter()
            .fold(DefaultRunner::builder(db.url.clone()).config(config(db)), |b, w| b.workflow(w))
            .build()
            .await
            .unwrap();
        let mut input = Context::new();
        input.insert("source", json!("copy test")).unwrap();
        let done = runner.execute("copy_ok", input.clone()).await.unwrap().execution_id;
        runner.execute("copy_bad", input.clone()).await.unwrap();
        let flaky = runner.execute_async("copy_flaky", input.clone()).await.unwrap().execution_id();
        let paused = runner.execute_async("copy_gated", input.clone()).await.unwrap().execution_id();
        let cancelled = runner.execute_async("copy_gated", input).await.unwrap().execution_id();
        wait_until("the retry to be scheduled", Duration::from_secs(30), || {
            let t = task_of(db, flaky);
            (t.status == TaskStatus::Ready && t.attempt == 2).then_some(())
        });
        for run in [paused, cancelled] {
            wait_until("the gated task to start", Duration::from_secs(30), || {
                (task_of(db, run).status == TaskStatus::Running).then_some(())
            });
        }
        assert!(runner.pause(paused).await.unwrap());
        assert!(runner.cancel(cancelled).await.unwrap());
        open.send_replace(true);
        for run in [paused, cancelled] {
            wait_until("the gated task to end", Duration::from_secs(30), || {
                task_of(db, run).status.is_terminal().then_some(())
            });
        }
        runner.shutdown().await.unwrap();

        let mut conn = db.conn();
        let now = UniversalTimestamp::now();
        let schedule = cloacina::cron::create(
            &mut conn,
            &cloacina::cron::ScheduleConfig::new("copy_ok", "0 3 * * *"),
            chrono::Utc::now(),
        )
        .unwrap();
        let fire = cron_executions::claim(&mut conn, schedule.id, chrono::Utc::now(), "copier", now).unwrap().unwrap();
        assert!(cron_executions::link_pipeline(&mut conn, fire, "copier", done, now).unwrap());
        trigger_schedules::register(&mut conn, "inbox", "copy_ok", Duration::from_secs(5), false, now).unwrap();
        trigger_executions::insert(&mut conn, "inbox", "abc123", done, "copier", now).unwrap();
        let package = workflow_packages::NewPackage {
            package_name: "pkg".into(),
            version: "1.0.0".into(),
            description: None,
            content: vec![0, 1, 2, 254, 255],
            metadata: json!({"k": "v"}),
            status: cloacina::models::PackageStatus::Failed,
            error: Some("a build error".into()),
        };
        workflow_packages::insert(&mut conn, package, now).unwrap();
        // A runner of this host that stopped without removing itself.
        cloacina::dal::runners::register(
            &mut conn,
            cloacina::dal::runners::NewRunner {
                name: "gone-runner",
                host_id: "boot-id",
                host_name: "box",
                pid: 4242,
                versions: &Default::default(),
            },
            now,
        )
        .unwrap();
        // A runner that died holding a task: recovery requeues it (a recovery event, an attempt).
        pipelines::create(&mut conn, PipelineExecutionId::new(), &pipeline("w", 1, 0), now).unwrap();
        assert_eq!(
            tasks::claim_ready(&mut conn, "ghost", &versions(), 1, Duration::from_secs(1), now).unwrap().len(),
            1
        );
        let later = now.plus(Duration::from_secs(2));
        assert_eq!(tasks::expire_leases(&mut conn, &versions(), later, 10).unwrap().len(), 1);
    });
}

/// Also SQLite -> SQLite and PostgreSQL schema -> schema, from the copies.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn sqlite_to_postgres_to_sqlite_arrives_identical() {
    let original = TestDb::sqlite();
    populate(&original);
    let statuses: Vec<PipelineStatus> =
        pipelines::list(&mut original.conn(), &Default::default()).unwrap().into_iter().map(|p| p.status).collect();
    for s in [
        PipelineStatus::Completed,
        PipelineStatus::Failed,
        PipelineStatus::Running,
        PipelineStatus::Paused,
        PipelineStatus::Cancelled,
    ] {
        assert!(statuses.contains(&s), "the source has a {s} run: {statuses:?}");
    }

    let middle = TestDb::postgres();
    // A runner of this host died without removing its row moments ago: it looks live.
    match copy_all(&original, &middle, false) {
        Err(CopyError::LiveRunner(why)) => assert!(why.contains("runner gone-runner on box"), "{why}"),
        other => panic!("a live-looking source must be refused: {other:?}"),
    }
    assert!(cloacina::dal::row_counts(&mut middle.conn()).unwrap().iter().all(|(_, n)| *n == 0));
    let there = copy_all(&original, &middle, true).unwrap();
    let last = TestDb::sqlite();
    let back = copy_all(&middle, &last, true).unwrap();

    let source = copy::canonical_rows(&mut original.conn()).unwrap();
    for (table, rows) in &source {
        assert!(!rows.is_empty(), "the source has {table} rows");
    }
    assert_eq!(copy::canonical_rows(&mut middle.conn()).unwrap(), source, "SQLite -> PostgreSQL");
    assert_eq!(copy::canonical_rows(&mut last.conn()).unwrap(), source, "-> SQLite again");
    let sums = copy::checksums(&mut original.conn()).unwrap();
    assert_eq!((there.tables.clone(), back.tables.clone()), (sums.clone(), sums));
    assert_eq!(there.rows, source.iter().map(|(_, r)| r.len() as u64).sum::<u64>());

    // A compacted backup (SQLite -> SQLite) and a move between PostgreSQL schemas.
    let backup = TestDb::sqlite();
    copy_all(&last, &backup, true).unwrap();
    assert_eq!(copy::canonical_rows(&mut backup.conn()).unwrap(), source, "SQLite -> SQLite");
    let moved = TestDb::postgres();
    copy_all(&middle, &moved, true).unwrap();
    assert_eq!(copy::canonical_rows(&mut moved.conn()).unwrap(), source, "schema -> schema");
}

#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn a_run_cut_off_on_sqlite_finishes_on_postgres() {
    let source = TestDb::sqlite();
    let env = [
        ("NAME", "doomed-worker".to_owned()),
        ("HANG", "1".to_owned()),
        ("START", "crashy_2:1".to_owned()),
        ("LEASE_MS", "1000".to_owned()),
        ("HEARTBEAT_MS", "200".to_owned()),
    ];
    let mut victim = worker(&source, &env);
    let run: PipelineExecutionId = victim.expect("PIPELINE").parse().unwrap();
    wait_until("the worker to claim the task", Duration::from_secs(30), || {
        (task_of(&source, run).claimed_by.as_deref() == Some("doomed-worker")).then_some(())
    });
    victim.kill();

    let target = TestDb::postgres();
    copy_all(&source, &target, true).unwrap();
    let moved = task_of(&target, run);
    assert_eq!((moved.status, moved.claimed_by.as_deref()), (TaskStatus::Running, Some("doomed-worker")));
    assert_eq!(moved.lease_expires_at, task_of(&source, run).lease_expires_at, "the lease arrives as it was");

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let schema = target.db.schema().map(str::to_owned);
    let url = target.url.clone();
    let runner = rt.block_on(async move {
        DefaultRunner::builder(url).config(fast_recovery(schema, "rescuer")).workflow(crashy(2, false)).build().await
    });
    let runner = runner.unwrap();
    let status = wait_until("the run to finish on PostgreSQL", Duration::from_secs(30), || {
        let p = pipelines::get(&mut target.conn(), run).ok()??;
        p.status.is_terminal().then_some(p.status)
    });
    rt.block_on(runner.shutdown()).unwrap();
    assert_eq!(status, PipelineStatus::Completed);
    let events = recovery_events::list_for_pipeline(&mut target.conn(), run).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].recovery_type, recovery_events::TASK_REQUEUED);
    let task = task_of(&target, run);
    assert_eq!((task.attempt, task.claimed_by.as_deref()), (2, Some("rescuer")));
}

crate::harness::backend_test!(bad_targets_are_refused_and_left_untouched, |t| {
    populate(&t);
    // Not empty: the source itself.
    match copy::copy(&mut t.conn(), &mut t.conn(), CopyOptions { force: true }, chrono::Utc::now(), &mut |_| {}) {
        Err(CopyError::TargetNotEmpty { table, rows }) => assert!(rows > 0, "{table}"),
        other => panic!("{other:?}"),
    }
    // Not migrated: a database nobody migrated (a new SQLite file, or a schema never created).
    let blank = crate::harness::scratch_dir().join(format!("{}.db", crate::harness::unique_name("blank")));
    let (url, schema) = match t.db.backend() {
        cloacina::Backend::Sqlite => (format!("sqlite://{}", blank.display()), None),
        cloacina::Backend::Postgres => (t.url.clone(), Some(crate::harness::unique_name("blank"))),
    };
    let url = cloacina::database::DatabaseUrl::parse(&url).unwrap();
    let options = cloacina::database::ConnectOptions { schema, ..Default::default() };
    let mut empty = cloacina::database::establish(&url, &options).unwrap();
    match copy::copy(&mut t.conn(), &mut empty, CopyOptions { force: true }, chrono::Utc::now(), &mut |_| {}) {
        Err(e @ CopyError::TargetNotMigrated { .. }) => {
            assert!(e.to_string().contains("run `cloacinactl db migrate` on it first"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(cloacina::database::migrate::status(&mut empty).unwrap().applied.is_empty(), "left untouched");
    drop(empty);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", blank.display()));
    }
});

/// A SQLite database written before NUL characters were refused may hold one; PostgreSQL cannot
/// store it. The copy names the table, the row and the column, and commits nothing.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn a_row_holding_nul_is_named_and_nothing_is_copied() {
    let source = TestDb::sqlite();
    let now = UniversalTimestamp::now();
    cloacina::dal::contexts::insert(&mut source.conn(), &json!({"fine": "yes"}), now).unwrap();
    let bad = cloacina::dal::contexts::insert(&mut source.conn(), &json!({"a": ["x", "nul\u{0}here"]}), now).unwrap();
    let target = TestDb::postgres();
    match copy_all(&source, &target, false) {
        Err(e @ CopyError::HoldsNul { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("row {bad} of contexts")) && text.contains("`value`"), "{text}");
        }
        other => panic!("a NUL must be named: {other:?}"),
    }
    assert!(cloacina::dal::row_counts(&mut target.conn()).unwrap().iter().all(|(_, n)| *n == 0));
}

/// A runner that stopped gracefully removed its row: the database is not in use, and a copy
/// right after takes it without --force (the registry's last sighting is only history).
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn a_copy_right_after_a_graceful_stop_is_not_refused() {
    let source = TestDb::sqlite();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (_open, gate) = watch::channel(true);
        let runner = DefaultRunner::builder(source.url.clone())
            .config(config(&source))
            .workflow(workflows(&gate).remove(0))
            .build()
            .await
            .unwrap();
        assert_eq!(runner.execute("copy_ok", Context::new()).await.unwrap().status, PipelineStatus::Completed);
        runner.shutdown().await.unwrap();
    });
    let target = TestDb::postgres();
    let report = copy_all(&source, &target, false).expect("no live runner: the copy goes ahead");
    assert!(report.rows > 0);
}
