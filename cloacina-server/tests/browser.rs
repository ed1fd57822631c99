//! The dashboard in a real browser (headless Chromium through Selenium, `scripts/browser_test.py`)
//! against a database a real runner wrote, on SQLite and on PostgreSQL: a failed run's graph and
//! error, a run started and watched to completion, a run cancelled, a phone's width. Screenshots
//! are kept under `target/screenshots/<backend>/`.
//!
//! It needs Debian's chromium and chromium-driver and Python's selenium: `scripts/test` installs
//! them before the tests run. Without them the test fails, saying so; it is never skipped.

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use cloacina::executor::{WorkflowExecutor, WorkflowStatus};
use cloacina::Context;
use cloacina_server::ServerConfig;
use support::{block_on, runner, TestDb};
use tokio::sync::watch;

async fn drive(t: TestDb, backend: &str) {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists() && std::path::Path::new("/usr/bin/chromedriver").exists(),
        "the browser test needs /usr/bin/chromium and /usr/bin/chromedriver (Debian: apt-get install chromium \
         chromium-driver; scripts/test installs them) and `pip install selenium`"
    );
    let (open, gate) = watch::channel(false); // slow_flow waits until the end
    let runner = runner(&t, &gate).await;
    let failed = runner.execute("bad_flow", Context::new()).await.unwrap();
    assert_eq!(failed.status, WorkflowStatus::Failed);
    // A package a daemon recorded as failed (its error's first line is shown).
    let arrival = cloacina::ops::packages::Arrival {
        name: "dashboard-demo".into(),
        version: "1.0.0".into(),
        description: None,
        manifest: serde_json::json!({}),
        workflows: Vec::new(),
        contents: serde_json::Value::Null,
        archive: b"BZh9 an archive".to_vec(),
    };
    let why = "the package did not compile: <b>bold</b>\nerror[E0425]: cannot find value `x`".to_owned();
    let now = cloacina::clock::Clock::now(&cloacina::clock::SystemClock);
    let admitted =
        runner.database().run_with(move |c| cloacina::ops::packages::admit(c, arrival, Err(why), now)).await.unwrap();
    admitted.unwrap();
    // A worker (the daemon following the stored packages) loads what the page uploads: the
    // repository's example package, packed here.
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (_, archive) = cloacina::packages::source::pack(&root.join("examples/packages/simple-packaged")).unwrap();
    let upload_dir = root.join("target/browser-upload").join(backend);
    std::fs::create_dir_all(&upload_dir).unwrap();
    let archive_path = upload_dir.join("simple-packaged-0.1.0.cloacina");
    std::fs::write(&archive_path, &archive).unwrap();
    let mut loader = cloacina::packages::Loader::from_env();
    if std::env::var_os("CLOACINA_PACKAGE_CACHE").is_none() {
        loader.compiler.cache_dir = root.join("target/package-cache");
        loader.work_dir = upload_dir.join("unpacked");
    }
    let config = cloacina::runner::DefaultRunnerConfig {
        schema: t.schema.clone(),
        poll_interval: std::time::Duration::from_millis(50),
        runner_name: Some(format!("browser-worker-{backend}")),
        ..Default::default()
    };
    let worker_runner = cloacina::runner::DefaultRunner::with_config(&t.url, config).await.unwrap();
    let python = cloacina::packages::python::PythonHost::from_env(&t.url, t.schema.clone(), upload_dir.join("python"));
    let mut daemon =
        cloacina::packages::daemon::Daemon::new(worker_runner, loader, python, Vec::new()).unwrap().follow_stored(true);
    let (stop_worker, worker_stop) = tokio::sync::oneshot::channel::<()>();
    // Run beside the browser below (the daemon stays on this task: its Python workers' pipes
    // are not `Sync`).
    let worker = async move {
        daemon
            .watch(std::time::Duration::from_millis(200), async {
                let _ = worker_stop.await;
            })
            .await;
        daemon.shutdown().await.unwrap();
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cloacina_server::serve_on(listener, t.open(), ServerConfig::default(), async {
        let _ = stop.await;
    }));
    let screenshots = root.join("target/screenshots").join(backend);
    let script = root.join("scripts/browser_test.py");
    let failed_id = failed.execution_id.to_string();
    let browse = async move {
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3")
                .arg(script)
                .args(["--url", &format!("http://{addr}/")])
                .args(["--failed", &failed_id, "--error", "disk full"])
                .arg("--archive")
                .arg(&archive_path)
                .arg("--screenshots")
                .arg(&screenshots)
                .output()
                .expect("run python3 scripts/browser_test.py")
        })
        .await
        .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "browser test failed on {backend}:\n{text}");
        assert!(text.contains("browser test:"), "{text}");
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        stop_worker.send(()).unwrap();
    };
    tokio::join!(worker, browse);
    open.send_replace(true);
    runner.shutdown().await.unwrap();
}

#[test]
fn dashboard_in_chromium_sqlite() {
    block_on(drive(TestDb::sqlite(), "sqlite"));
}

#[test]
fn dashboard_in_chromium_postgres() {
    block_on(drive(TestDb::postgres(), "postgres"));
}
