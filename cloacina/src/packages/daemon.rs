//! The daemon: a runner that takes its workflows from `.cloacina` archives in watched
//! directories (`cloacinactl daemon --packages DIR`).
//!
//! Each [`Daemon::scan`] compares the directories with what it loaded:
//!
//! - a new archive is loaded ([`Loader::load`]), admitted by the application layer
//!   ([`ops::packages::admit`]: a reused version or a workflow another package defines is
//!   refused) and its workflows, triggers and cron schedules are offered by the runner;
//! - a changed archive (another content hash) is loaded the same way; its workflows become the
//!   versions new runs start at, runs in flight finish on the version they started with, and
//!   workflows the new archive no longer defines are withdrawn. If the new archive fails, the
//!   last good one keeps serving and the failure is reported;
//! - a removed archive's workflows are withdrawn (no new runs; runs in flight finish) and the
//!   package is recorded as removed;
//! - a broken archive is reported once, as one error naming its file, and tried again only when
//!   the file changes. Everything else keeps running.
//!
//! A database failure during any of these steps fails the scan and leaves the file as the daemon
//! saw it before, so the next scan does the whole change again; every step may be repeated
//! (admitting the same content again changes nothing, removing twice records it once).
//!
//! A Python package runs in a worker process of its own ([`super::python`]); the daemon starts
//! it once the package is admitted, tells it to withdraw when its archive is replaced or
//! removed, and starts it again if it dies.
//!
//! An archive being copied in may be read half-written: it fails, and loads when the copy
//! completes and the file changes again. Writing it beside and renaming it in avoids the noise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::python::{PythonHost, Worker};
use super::{content_hash, Language, Loader, Manifest, Output};
use crate::faults::{FaultPoint, FaultTiming};
use crate::models::PackageStatus;
use crate::ops;
use crate::runner::DefaultRunner;
use crate::Error;

/// How often the directories are scanned by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Where a package comes from: an archive file in a watched directory, or the database (a
/// package uploaded to a server; one version of each package name serves, the newest live one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Origin {
    File(PathBuf),
    Stored(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Stored(name) => write!(f, "stored package {name}"),
        }
    }
}

/// One watched archive as the daemon last saw it.
#[derive(Debug)]
struct Known {
    /// Modification time and length: a file whose stamp did not change is not read again (none
    /// for a stored package).
    stamp: (Option<SystemTime>, u64),
    /// The content hash of the archive last read from it.
    sha256: String,
    /// The package that serves from this file: name, version, the archive's hash and the
    /// workflows it offers. Kept when a newer archive in the file fails to load.
    serving: Option<Serving>,
}

#[derive(Debug, Clone)]
struct Serving {
    name: String,
    version: String,
    sha256: String,
    workflows: Vec<String>,
    /// Served by a Python worker (kept in `Daemon::workers` under its origin), not by the
    /// daemon's runner.
    python: bool,
}

/// How long a stopping daemon waits for a Python worker to stop before killing it.
const WORKER_GRACE: Duration = Duration::from_secs(30);

/// How an archive's arrival ended.
enum Arrived {
    /// It serves.
    Serving(Serving),
    /// It does not; `recorded` when its package is recorded `failed` with the reason.
    Failed { why: String, recorded: bool },
}

/// How a scan names an origin.
fn origin_path(origin: &Origin) -> PathBuf {
    match origin {
        Origin::File(path) => path.clone(),
        Origin::Stored(_) => PathBuf::from(origin.to_string()),
    }
}

/// A loaded package, before it is admitted.
enum Hosted {
    Rust(Box<super::Loaded>),
    Python(Worker),
}

/// What one scan did. Files are named by their paths, stored packages by
/// `stored package <name>`.
#[derive(Debug, Default)]
pub struct Scan {
    /// Archives loaded (new or changed).
    pub loaded: Vec<PathBuf>,
    /// Archives that failed, with why.
    pub failed: Vec<(PathBuf, String)>,
    /// Archives that were removed.
    pub removed: Vec<PathBuf>,
}

/// A runner fed by package directories.
pub struct Daemon {
    runner: DefaultRunner,
    loader: Loader,
    python: PythonHost,
    dirs: Vec<PathBuf>,
    known: HashMap<Origin, Known>,
    /// The Python workers serving, by origin.
    workers: HashMap<Origin, Worker>,
    /// Withdrawn Python workers finishing their runs.
    draining: Vec<Worker>,
    /// Whether [`Daemon::watch`] also follows the packages stored in the database.
    stored: bool,
}

impl Daemon {
    /// A daemon running `runner`, watching `dirs` (each created if missing) with `loader`, and
    /// running Python packages with `python`.
    pub fn new(runner: DefaultRunner, loader: Loader, python: PythonHost, dirs: Vec<PathBuf>) -> Result<Self, Error> {
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(|e| Error::InvalidSetting {
                setting: "packages",
                reason: format!("{}: {e}", dir.display()),
            })?;
        }
        Ok(Daemon {
            runner,
            loader,
            python,
            dirs,
            known: HashMap::new(),
            workers: HashMap::new(),
            draining: Vec::new(),
            stored: false,
        })
    }

    /// Makes [`Daemon::watch`] also load the packages stored in the database (uploaded to a
    /// server), as a server's worker does ([`Daemon::sync_stored`]).
    pub fn follow_stored(mut self, follow: bool) -> Self {
        self.stored = follow;
        self
    }

    /// The runner.
    pub fn runner(&self) -> &DefaultRunner {
        &self.runner
    }

    /// Compares the directories with what is loaded and acts on every difference. Errors of one
    /// archive are in the returned [`Scan`]; an `Err` is the database failing.
    pub async fn scan(&mut self) -> Result<Scan, Error> {
        let mut scan = Scan::default();
        self.supervise();
        let present = self.archives(&mut scan);
        self.forget_where(|o| matches!(o, Origin::File(p) if !present.iter().any(|(q, _)| q == p)), &mut scan).await?;
        for (path, stamp) in present {
            let origin = Origin::File(path.clone());
            if self.known.get(&origin).is_some_and(|k| k.stamp == stamp) {
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) => {
                    scan.failed.push((path.clone(), e.to_string()));
                    continue;
                }
            };
            let sha256 = content_hash(&bytes);
            if let Some(known) = self.known.get_mut(&origin).filter(|k| k.sha256 == sha256) {
                known.stamp = stamp;
                continue;
            }
            self.take(origin, stamp, bytes, &mut scan).await?;
        }
        Ok(scan)
    }

    /// Compares the packages stored in the database (uploaded to a server) with what it loaded
    /// from there, as [`Daemon::scan`] does for directories: the newest version of each package
    /// that is `uploaded` or `loaded` serves; a package with none (deleted, or every version
    /// failed) is withdrawn. A stored package this daemon refuses (another package defines its
    /// workflow) is recorded `failed` with the reason, so no worker tries it again.
    pub async fn sync_stored(&mut self) -> Result<Scan, Error> {
        let mut scan = Scan::default();
        self.supervise();
        let stored = self.runner.database().run_with(ops::packages::list).await?;
        let mut wanted = std::collections::BTreeMap::new();
        // Listed by name, oldest first: the last live version of each name wins.
        for p in stored.into_iter().filter(|p| matches!(p.status, PackageStatus::Uploaded | PackageStatus::Loaded)) {
            wanted.insert(p.package_name.clone(), p);
        }
        self.forget_where(|o| matches!(o, Origin::Stored(name) if !wanted.contains_key(name)), &mut scan).await?;
        for (name, package) in wanted {
            let origin = Origin::Stored(name.clone());
            if self.known.get(&origin).is_some_and(|k| k.sha256 == package.content_sha256) {
                continue;
            }
            let version = package.version.clone();
            let (n, v) = (name.clone(), version.clone());
            let Some(bytes) = self.runner.database().run_with(move |c| ops::packages::archive(c, &n, &v)).await? else {
                continue; // deleted since it was listed
            };
            let refused = self.take(origin, (None, 0), bytes, &mut scan).await?;
            if let Some(why) = refused {
                let (now, sha) = (self.runner.now(), package.content_sha256.clone());
                self.runner
                    .database()
                    .run_with(move |c| ops::packages::refuse(c, &name, &version, &sha, &why, now))
                    .await?;
            }
        }
        Ok(scan)
    }

    /// Forgets (see [`Daemon::forget`]) every known origin that is `gone`.
    async fn forget_where(&mut self, gone: impl Fn(&Origin) -> bool, scan: &mut Scan) -> Result<(), Error> {
        let gone: Vec<Origin> = self.known.keys().filter(|o| gone(o)).cloned().collect();
        for origin in gone {
            self.forget(origin, scan).await?;
        }
        Ok(())
    }

    /// Withdraws what `origin` served and forgets it. Forgotten only once retired: a database
    /// failure leaves it known, so the next scan retires it again (each step may be repeated).
    async fn forget(&mut self, origin: Origin, scan: &mut Scan) -> Result<(), Error> {
        if let Some(serving) = self.known.get(&origin).and_then(|k| k.serving.clone()) {
            self.retire(&origin, &serving).await?;
            tracing::info!(origin = %origin, package = %serving.name, version = %serving.version, "package removed: its workflows start no new runs");
        }
        self.known.remove(&origin);
        scan.removed.push(origin_path(&origin));
        Ok(())
    }

    /// Loads the archive `bytes` from `origin` and records what it serves, reporting in `scan`;
    /// returns the reason when the application layer refused it. The origin is recorded as seen
    /// only after `arrive` got through: a database failure leaves it as it was, so the next scan
    /// loads it again (each step of `arrive` may be repeated: admitting the same content again is
    /// no change).
    async fn take(
        &mut self,
        origin: Origin,
        stamp: (Option<SystemTime>, u64),
        bytes: Vec<u8>,
        scan: &mut Scan,
    ) -> Result<Option<String>, Error> {
        let sha256 = content_hash(&bytes);
        let previous = self.known.get(&origin).and_then(|k| k.serving.clone());
        let outcome = self.arrive(&origin, bytes, previous.as_ref()).await?;
        let (serving, refused) = match outcome {
            Arrived::Serving(serving) => {
                tracing::info!(origin = %origin, package = %serving.name, version = %serving.version, workflows = ?serving.workflows, "package loaded");
                scan.loaded.push(origin_path(&origin));
                (Some(serving), None)
            }
            Arrived::Failed { why, recorded } => {
                tracing::error!("{origin}: {why}");
                scan.failed.push((origin_path(&origin), why.clone()));
                (previous, (!recorded).then_some(why))
            }
        };
        self.known.insert(origin, Known { stamp, sha256, serving });
        Ok(refused)
    }

    /// Scans the directories and (with [`Daemon::follow_stored`]) the stored packages every
    /// `interval`, and the stored packages at once when an upload or deletion is announced
    /// (PostgreSQL), until `stop` resolves, letting go of replaced versions whose runs
    /// have ended as it goes. A scan that fails on the database is logged and tried again.
    pub async fn watch(&mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let announced = async {
                if self.stored {
                    self.runner.packages_changed().await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = ticks.tick() => {}
                _ = announced => {}
            }
            if !self.dirs.is_empty() {
                if let Err(e) = self.scan().await {
                    tracing::warn!(error = %e, "scanning the package directories failed; trying again");
                }
            }
            if self.stored {
                if let Err(e) = self.sync_stored().await {
                    tracing::warn!(error = %e, "reading the stored packages failed; trying again");
                }
            }
            match self.runner.release_finished_versions().await {
                Ok(released) if !released.is_empty() => {
                    tracing::info!(versions = ?released, "released versions whose runs all ended")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not release finished versions"),
            }
        }
    }

    /// The `*.cloacina` files in the watched directories with their stamps; unreadable
    /// directories are reported in `scan`.
    fn archives(&self, scan: &mut Scan) -> Vec<(PathBuf, (Option<SystemTime>, u64))> {
        let mut found = Vec::new();
        for dir in &self.dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    scan.failed.push((dir.clone(), e.to_string()));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let is_archive = path.extension().is_some_and(|e| e == super::manifest::EXTENSION);
                match entry.metadata() {
                    Ok(m) if is_archive && m.is_file() => found.push((path, (m.modified().ok(), m.len()))),
                    _ => {}
                }
            }
        }
        found.sort();
        found
    }

    /// Loads, admits and offers the archive `bytes` from `origin`; `previous` is what the origin
    /// served before.
    async fn arrive(&mut self, origin: &Origin, bytes: Vec<u8>, previous: Option<&Serving>) -> Result<Arrived, Error> {
        let (loader, python) = (self.loader.clone(), self.python.clone());
        let archive = bytes.clone();
        let worker_name = ops::packages::python_runner_name(self.runner.runner_name(), &content_hash(&bytes));
        let loaded = tokio::task::spawn_blocking(move || {
            let unpacked = loader.unpack(&archive)?;
            let hosted = match unpacked.manifest.language() {
                Language::Python => python.describe(&unpacked, &worker_name).map(Hosted::Python),
                Language::Rust => loader.load(&unpacked, Output::Captured).map(|l| Hosted::Rust(Box::new(l))),
            };
            Ok::<_, super::Error>((
                unpacked.manifest.clone(),
                unpacked.sha256.clone(),
                hosted.map_err(|e| e.to_string()),
            ))
        })
        .await
        .map_err(|e| Error::InvalidSetting { setting: "packages", reason: format!("the loader stopped: {e}") })?;
        let (manifest, sha256, hosted) = match loaded {
            Ok(loaded) => loaded,
            // Not even a manifest: nothing to record, only to report.
            Err(e) => return Ok(Arrived::Failed { why: e.to_string(), recorded: false }),
        };
        let (workflows, contents): (Vec<String>, Value) = match &hosted {
            Ok(Hosted::Rust(l)) => (
                l.set.workflows.iter().map(|w| w.name().to_owned()).collect(),
                serde_json::to_value(&l.description).unwrap_or(Value::Null),
            ),
            Ok(Hosted::Python(w)) => (
                w.workflows.iter().map(|(n, _)| n.clone()).collect(),
                serde_json::json!({ "workflows": w.workflows.iter().map(|(n, v)| serde_json::json!({"name": n, "version": v})).collect::<Vec<_>>() }),
            ),
            Err(_) => (Vec::new(), Value::Null),
        };
        let arrival = ops::packages::Arrival {
            name: manifest.package.name.clone(),
            version: manifest.package.version.clone(),
            description: manifest.metadata.description.clone(),
            manifest: serde_json::to_value(&manifest).unwrap_or(Value::Null),
            workflows: workflows.clone(),
            contents,
            archive: bytes,
        };
        let result = hosted.as_ref().map(|_| ()).map_err(Clone::clone);
        if let Err(refused) = self.admit(arrival.clone(), result).await? {
            if let Ok(Hosted::Python(worker)) = hosted {
                stop_workers(vec![worker]).await;
            }
            return Ok(Arrived::Failed { why: refused.to_string(), recorded: false });
        }
        let mut replaced: Option<Worker> = None;
        let python = match hosted {
            Err(why) => return Ok(Arrived::Failed { why, recorded: true }),
            Ok(Hosted::Rust(loaded)) => {
                self.runner.add_workflows(loaded.set).await?;
                false
            }
            Ok(Hosted::Python(mut worker)) => {
                let started =
                    tokio::task::spawn_blocking(move || worker.start().map(|()| worker)).await.map_err(|e| {
                        Error::InvalidSetting { setting: "packages", reason: format!("the loader stopped: {e}") }
                    })?;
                match started {
                    Ok(worker) => {
                        // The file's earlier worker (if any) is withdrawn below.
                        replaced = self.workers.insert(origin.clone(), worker);
                        true
                    }
                    Err(e) => {
                        let why = e.to_string();
                        let _ = self.admit(arrival, Err(why.clone())).await?;
                        return Ok(Arrived::Failed { why, recorded: true });
                    }
                }
            }
        };
        if let Some(previous) = previous {
            if previous.python {
                let old = if python { replaced } else { self.workers.remove(origin) };
                if let Some(mut old) = old {
                    old.withdraw();
                    self.draining.push(old);
                }
            } else {
                let dropped: Vec<String> =
                    previous.workflows.iter().filter(|w| !workflows.contains(w)).cloned().collect();
                let dropped = if python { previous.workflows.clone() } else { dropped };
                if !dropped.is_empty() {
                    self.runner.withdraw_workflows(&dropped).await?;
                }
            }
            if previous.version != manifest.package.version || previous.name != manifest.package.name {
                self.record_removed(previous).await?;
            }
        }
        Ok(Arrived::Serving(serving_of(&manifest, &sha256, workflows, python)))
    }

    /// Records `arrival` as loaded (`Ok`) or failed; refused as `ops::packages::admit` says.
    async fn admit(
        &self,
        arrival: ops::packages::Arrival,
        load: Result<(), String>,
    ) -> Result<Result<(), ops::Refused>, Error> {
        let (now, faults) = (self.runner.now(), self.runner.faults().clone());
        let admit = move |c: &mut crate::database::AnyConnection| {
            faults.check(FaultPoint::AdmitPackage, FaultTiming::Before)?;
            let admitted = ops::packages::admit(c, arrival, load, now)?;
            faults.check(FaultPoint::AdmitPackage, FaultTiming::AfterCommit)?;
            Ok::<_, Error>(admitted)
        };
        self.runner.database().run_with(admit).await
    }

    /// Withdraws what `serving` (from `origin`) offered and records its package as removed.
    async fn retire(&mut self, origin: &Origin, serving: &Serving) -> Result<(), Error> {
        if serving.python {
            if let Some(mut worker) = self.workers.remove(origin) {
                worker.withdraw();
                self.draining.push(worker);
            }
        } else {
            self.runner.withdraw_workflows(&serving.workflows).await?;
        }
        self.record_removed(serving).await
    }

    async fn record_removed(&self, serving: &Serving) -> Result<(), Error> {
        let (s, now, faults) = (serving.clone(), self.runner.now(), self.runner.faults().clone());
        let remove = move |c: &mut crate::database::AnyConnection| {
            faults.check(FaultPoint::RemovePackage, FaultTiming::Before)?;
            ops::packages::remove(c, &s.name, &s.version, &s.sha256, now)?;
            faults.check(FaultPoint::RemovePackage, FaultTiming::AfterCommit)?;
            Ok::<_, Error>(())
        };
        self.runner.database().run_with(remove).await
    }

    /// Reaps withdrawn workers that finished; a serving worker that died is forgotten with its
    /// file, so the next scan loads the file again (and starts a new worker).
    fn supervise(&mut self) {
        self.draining.retain_mut(|w| w.exited().is_none());
        let dead: Vec<Origin> = self.workers.iter_mut().filter_map(|(o, w)| w.exited().map(|_| o.clone())).collect();
        for origin in dead {
            if let Some(mut worker) = self.workers.remove(&origin) {
                tracing::error!(origin = %origin, status = ?worker.exited(), "the package's Python worker died; starting it again");
            }
            self.known.remove(&origin);
        }
    }

    /// The versions this daemon runs: its runner's and its Python workers'.
    fn versions(&self) -> Vec<String> {
        self.workers.values().chain(&self.draining).flat_map(|w| w.workflows.iter().map(|(_, v)| v.clone())).collect()
    }

    /// `--once`: loads the packages, waits (checking every `interval`) until no run of their
    /// workflows is unfinished, and stops.
    pub async fn run_once(&mut self, interval: Duration) -> Result<Scan, Error> {
        let scan = self.scan().await?;
        let waited = self.runner.finish_unfinished_runs(interval, &self.versions()).await;
        self.shutdown().await?;
        waited.map(|()| scan)
    }

    /// Stops the Python workers (gracefully, then after a grace period by force) and the runner
    /// (see [`DefaultRunner::shutdown`]).
    pub async fn shutdown(&mut self) -> Result<(), Error> {
        let workers: Vec<Worker> = self.workers.drain().map(|(_, w)| w).chain(self.draining.drain(..)).collect();
        stop_workers(workers).await;
        self.runner.shutdown().await
    }
}

fn serving_of(manifest: &Manifest, sha256: &str, workflows: Vec<String>, python: bool) -> Serving {
    Serving {
        name: manifest.package.name.clone(),
        version: manifest.package.version.clone(),
        sha256: sha256.to_owned(),
        workflows,
        python,
    }
}

/// Stops `workers` gracefully, each within [`WORKER_GRACE`], off the async runtime.
async fn stop_workers(workers: Vec<Worker>) {
    if workers.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for w in workers {
            w.stop(WORKER_GRACE);
        }
    })
    .await;
}
