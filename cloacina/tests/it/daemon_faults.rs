//! The daemon's package steps under database faults, on both backends: a step that fails (before
//! it ran, or after it committed) leaves the file to be handled again by the next scan, which
//! completes the change. Nothing is lost (a new version is not skipped, a removed package does
//! not keep serving) and nothing is doubled. And packages compiled at once into one cache, each
//! of which must keep its own library.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::json;

use crate::engine::{config, engine_test};
use cloacina::executor::WorkflowExecutor;
use cloacina::faults::{FaultPoint, FaultTiming, Faults};
use cloacina::models::PackageStatus;
use cloacina::packages::daemon::Daemon;
use cloacina::packages::python::PythonHost;
use cloacina::packages::Loader;
use cloacina::runner::DefaultRunner;
use cloacina::Context;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cloacina-daemon-faults-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The example package (v1) and the same at version 0.2.0 reporting release "two" (v2), packed
/// once per test binary (the package tests of cloacinactl make the same variant, so the compiled
/// library is shared through the cache).
fn archives() -> &'static (Vec<u8>, Vec<u8>) {
    static ARCHIVES: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    ARCHIVES.get_or_init(|| {
        let from = workspace().join("examples/packages/simple-packaged");
        let v1 = cloacina::packages::source::pack(&from).expect("pack v1").1;
        let to = scratch("source").join("simple-packaged");
        for rel in ["package.toml", "Cargo.toml", "build.rs", "src/lib.rs"] {
            let text = std::fs::read_to_string(from.join(rel)).expect("read");
            let text = match rel {
                "package.toml" => text.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
                "Cargo.toml" => text.replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1),
                "src/lib.rs" => text.replace("const RELEASE: &str = \"one\";", "const RELEASE: &str = \"two\";"),
                _ => text,
            };
            std::fs::create_dir_all(to.join(rel).parent().expect("parent")).expect("dirs");
            std::fs::write(to.join(rel), text).expect("write");
        }
        let v2 = cloacina::packages::source::pack(&to).expect("pack v2").1;
        (v1, v2)
    })
}

fn loader() -> Loader {
    let mut loader = Loader::from_env();
    if std::env::var_os("CLOACINA_PACKAGE_CACHE").is_none() {
        loader.compiler.cache_dir = workspace().join("target/package-cache");
    }
    loader.work_dir = scratch("unpacked");
    loader
}

/// Writes `bytes` into `dir/name` as a daemon should see it: beside, then renamed in.
fn drop_in(dir: &Path, name: &str, bytes: &[u8]) {
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::write(&partial, bytes).expect("write");
    std::fs::rename(&partial, dir.join(name)).expect("rename");
}

fn statuses(t: &crate::harness::TestDb) -> Vec<(String, PackageStatus)> {
    let mut conn = t.conn();
    let all = cloacina::ops::packages::list(&mut conn).expect("list");
    all.into_iter().map(|p| (p.version, p.status)).collect()
}

async fn release_of_a_run(runner: &DefaultRunner) -> serde_json::Value {
    // Bounded, so a package that stopped answering fails here rather than holding the suite.
    let run = runner.execute("data_processing", Context::new());
    let done = tokio::time::timeout(std::time::Duration::from_secs(120), run).await.expect("a run ends").expect("run");
    done.final_context.get("final_report").and_then(|r| r.get("release")).cloned().expect("release")
}

fn offered(daemon: &Daemon) -> bool {
    daemon.runner().runtime().workflow_names().contains(&"data_processing".to_owned())
}

engine_test!(every_package_step_survives_a_failed_statement, |t| {
    let (v1, v2) = archives();
    let faults = Faults::new();
    let runner =
        DefaultRunner::builder(t.url.clone()).config(config(&t)).faults(faults.clone()).build().await.expect("runner");
    let dir = scratch("watched");
    let python = PythonHost::from_env(&t.url, t.db.schema().map(str::to_owned), dir.clone());
    let mut daemon = Daemon::new(runner, loader(), python, vec![dir.clone()]).expect("daemon");

    // Recording a new package fails before it ran: nothing is recorded or offered, and the next
    // scan loads the file.
    faults.fail_once(FaultPoint::AdmitPackage, FaultTiming::Before);
    drop_in(&dir, "etl.cloacina", v1);
    assert!(daemon.scan().await.is_err(), "the scan reports the database failing");
    assert_eq!(statuses(&t), [], "nothing recorded");
    assert!(!offered(&daemon), "nothing offered");
    let scan = daemon.scan().await.expect("the next scan");
    assert_eq!(scan.loaded, [dir.join("etl.cloacina")], "{scan:?}");
    assert_eq!(statuses(&t), [("0.1.0".to_owned(), PackageStatus::Loaded)]);
    assert_eq!(release_of_a_run(daemon.runner()).await, json!("one"));

    // A new version whose record committed but whose answer was lost, then whose workflows
    // could not be offered: v1 keeps serving until a scan gets through, then v2 serves.
    faults.fail_once(FaultPoint::AdmitPackage, FaultTiming::AfterCommit);
    faults.fail_once(FaultPoint::OfferWorkflows, FaultTiming::Before);
    drop_in(&dir, "etl.cloacina", v2);
    assert!(daemon.scan().await.is_err(), "admit's answer lost");
    assert_eq!(release_of_a_run(daemon.runner()).await, json!("one"), "the old version serves meanwhile");
    assert!(daemon.scan().await.is_err(), "offering failed");
    let scan = daemon.scan().await.expect("the third scan");
    assert_eq!(scan.loaded, [dir.join("etl.cloacina")], "the new version is not skipped: {scan:?}");
    assert_eq!(
        statuses(&t),
        [("0.1.0".to_owned(), PackageStatus::Removed), ("0.2.0".to_owned(), PackageStatus::Loaded)],
        "one row per version, none doubled"
    );
    assert_eq!(release_of_a_run(daemon.runner()).await, json!("two"));

    // Removing the file: recording the removal fails after it committed; the workflow stops
    // being offered at once and the next scan finishes the removal.
    faults.fail_once(FaultPoint::RemovePackage, FaultTiming::AfterCommit);
    std::fs::remove_file(dir.join("etl.cloacina")).expect("remove");
    assert!(daemon.scan().await.is_err(), "removal's answer lost");
    assert!(!offered(&daemon), "a removed package starts no new runs, even before the record is done");
    let scan = daemon.scan().await.expect("the next scan");
    assert_eq!(scan.removed, [dir.join("etl.cloacina")], "{scan:?}");
    assert_eq!(
        statuses(&t),
        [("0.1.0".to_owned(), PackageStatus::Removed), ("0.2.0".to_owned(), PackageStatus::Removed)]
    );
    assert!(daemon.scan().await.expect("a quiet scan").removed.is_empty(), "removed once");
    for point in [FaultPoint::AdmitPackage, FaultPoint::OfferWorkflows, FaultPoint::RemovePackage] {
        assert!(faults.fired(point) >= 1, "{point:?} fired");
    }
    assert!(!faults.pending());
    daemon.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
});

/// Two versions of one package (one library name, so one `lib<name>.so` in cargo's shared target
/// directory) compiled at once, twice each, into a fresh cache: every archive's cached library is
/// its own build, whichever thread built it and whichever waited. Then a retired library, opened
/// again, runs again.
#[test]
fn versions_compiled_at_once_each_cache_their_own_library() {
    let (v1, v2) = archives();
    let mut loader = loader();
    loader.compiler.cache_dir = scratch("cache");
    let loader = &loader;
    let jobs = [(v1, "one"), (v2, "two"), (v1, "one"), (v2, "two")];
    let releases: Vec<(serde_json::Value, &str)> = std::thread::scope(|s| {
        let threads: Vec<_> = jobs
            .iter()
            .map(|(bytes, expected)| {
                s.spawn(move || {
                    let unpacked = loader.unpack(bytes).expect("unpack");
                    let loaded = loader.load(&unpacked, cloacina::packages::Output::Captured).expect("load");
                    let task = loaded.set.workflows[0].task_code("collect_data").expect("collect_data");
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    let out = runtime.block_on(task.run(Context::new())).expect("one attempt");
                    (out.get("raw_data").and_then(|r| r.get("release")).cloned().expect("release"), *expected)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("a build thread")).collect()
    });
    for (release, expected) in releases {
        assert_eq!(release, json!(expected), "an archive ran another version's library");
    }
    // Every load above was dropped, so both libraries (private to this test's cache) were
    // retired and their runtimes stopped; opened again, a library starts a new runtime.
    let again = loader.load(&loader.unpack(v1).expect("unpack"), cloacina::packages::Output::Captured).expect("load");
    let task = again.set.workflows[0].task_code("collect_data").expect("collect_data");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let out = runtime.block_on(task.run(Context::new())).expect("an attempt after the library was retired");
    assert_eq!(out.get("raw_data").and_then(|r| r.get("release")), Some(&json!("one")));
    let _ = std::fs::remove_dir_all(&loader.compiler.cache_dir);
}
