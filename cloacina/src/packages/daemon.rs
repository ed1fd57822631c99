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
//! An archive being copied in may be read half-written: it fails, and loads when the copy
//! completes and the file changes again. Writing it beside and renaming it in avoids the noise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{content_hash, Loaded, Loader, Manifest, Output};
use crate::ops;
use crate::runner::DefaultRunner;
use crate::Error;

/// How often the directories are scanned by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// One watched archive as the daemon last saw it.
#[derive(Debug)]
struct Known {
    /// Modification time and length: a file whose stamp did not change is not read again.
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
}

/// What one scan did.
#[derive(Debug, Default)]
pub struct Scan {
    /// Archives loaded (new or changed): their files.
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
    dirs: Vec<PathBuf>,
    known: HashMap<PathBuf, Known>,
}

impl Daemon {
    /// A daemon running `runner`, watching `dirs` (each created if missing) with `loader`.
    pub fn new(runner: DefaultRunner, loader: Loader, dirs: Vec<PathBuf>) -> Result<Self, Error> {
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(|e| Error::InvalidSetting {
                setting: "packages",
                reason: format!("{}: {e}", dir.display()),
            })?;
        }
        Ok(Daemon { runner, loader, dirs, known: HashMap::new() })
    }

    /// The runner.
    pub fn runner(&self) -> &DefaultRunner {
        &self.runner
    }

    /// Compares the directories with what is loaded and acts on every difference. Errors of one
    /// archive are in the returned [`Scan`]; an `Err` is the database failing.
    pub async fn scan(&mut self) -> Result<Scan, Error> {
        let mut scan = Scan::default();
        let present = self.archives(&mut scan);
        let gone: Vec<PathBuf> = self.known.keys().filter(|p| !present.iter().any(|(q, _)| q == *p)).cloned().collect();
        for path in gone {
            if let Some(known) = self.known.remove(&path) {
                if let Some(serving) = known.serving {
                    self.retire(&serving).await?;
                    tracing::info!(file = %path.display(), package = %serving.name, version = %serving.version, "package removed: its workflows start no new runs");
                }
                scan.removed.push(path);
            }
        }
        for (path, stamp) in present {
            if self.known.get(&path).is_some_and(|k| k.stamp == stamp) {
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
            if let Some(known) = self.known.get_mut(&path) {
                known.stamp = stamp;
                if known.sha256 == sha256 {
                    continue;
                }
                known.sha256 = sha256.clone();
            }
            let previous = self.known.get(&path).and_then(|k| k.serving.clone());
            let outcome = self.arrive(bytes, previous.as_ref()).await?;
            let serving = match outcome {
                Ok(serving) => {
                    tracing::info!(file = %path.display(), package = %serving.name, version = %serving.version, workflows = ?serving.workflows, "package loaded");
                    scan.loaded.push(path.clone());
                    Some(serving)
                }
                Err(why) => {
                    tracing::error!("{}: {why}", path.display());
                    scan.failed.push((path.clone(), why));
                    previous
                }
            };
            self.known.insert(path, Known { stamp, sha256, serving });
        }
        Ok(scan)
    }

    /// Scans every `interval` until `stop` resolves, letting go of replaced versions whose runs
    /// have ended as it goes. A scan that fails on the database is logged and tried again.
    pub async fn watch(&mut self, interval: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = ticks.tick() => {}
            }
            if let Err(e) = self.scan().await {
                tracing::warn!(error = %e, "scanning the package directories failed; trying again");
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

    /// Loads, admits and offers the archive `bytes`; `previous` is what its file
    /// served before. `Ok(Err(why))` is a refused or failed package.
    async fn arrive(&self, bytes: Vec<u8>, previous: Option<&Serving>) -> Result<Result<Serving, String>, Error> {
        let loader = self.loader.clone();
        let archive = bytes.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let unpacked = loader.unpack(&archive)?;
            let loaded = loader.load(&unpacked, Output::Captured);
            Ok::<_, super::Error>((unpacked.manifest, loaded))
        })
        .await
        .map_err(|e| Error::InvalidSetting { setting: "packages", reason: format!("the loader stopped: {e}") })?;
        let (manifest, loaded) = match loaded {
            Ok((manifest, loaded)) => (manifest, loaded.map_err(|e| e.to_string())),
            // Not even a manifest: nothing to record, only to report.
            Err(e) => return Ok(Err(e.to_string())),
        };
        let workflows: Vec<String> = match &loaded {
            Ok(l) => l.set.workflows.iter().map(|w| w.name().to_owned()).collect(),
            Err(_) => Vec::new(),
        };
        let arrival = ops::packages::Arrival {
            name: manifest.package.name.clone(),
            version: manifest.package.version.clone(),
            description: manifest.metadata.description.clone(),
            manifest: serde_json::to_value(&manifest).unwrap_or(Value::Null),
            workflows: workflows.clone(),
            contents: loaded
                .as_ref()
                .ok()
                .and_then(|l| serde_json::to_value(&l.description).ok())
                .unwrap_or(Value::Null),
            archive: bytes,
        };
        let result = loaded.as_ref().map(|_| ()).map_err(Clone::clone);
        let now = self.runner.now();
        let admitted = self.runner.database().run_with(move |c| ops::packages::admit(c, arrival, result, now)).await?;
        if let Err(refused) = admitted {
            return Ok(Err(refused.to_string()));
        }
        let loaded: Loaded = match loaded {
            Ok(l) => l,
            Err(why) => return Ok(Err(why)),
        };
        self.runner.add_workflows(loaded.set).await?;
        if let Some(previous) = previous {
            let dropped: Vec<String> = previous.workflows.iter().filter(|w| !workflows.contains(w)).cloned().collect();
            if !dropped.is_empty() {
                self.runner.withdraw_workflows(&dropped).await?;
            }
            if previous.version != manifest.package.version || previous.name != manifest.package.name {
                self.record_removed(previous).await?;
            }
        }
        Ok(Ok(serving_of(&manifest, &loaded.sha256, workflows)))
    }

    /// Withdraws what `serving` offered and records its package as removed.
    async fn retire(&self, serving: &Serving) -> Result<(), Error> {
        self.runner.withdraw_workflows(&serving.workflows).await?;
        self.record_removed(serving).await
    }

    async fn record_removed(&self, serving: &Serving) -> Result<(), Error> {
        let (s, now) = (serving.clone(), self.runner.now());
        self.runner.database().run_with(move |c| ops::packages::remove(c, &s.name, &s.version, &s.sha256, now)).await
    }

    /// Stops the runner (see [`DefaultRunner::shutdown`]).
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.runner.shutdown().await
    }
}

fn serving_of(manifest: &Manifest, sha256: &str, workflows: Vec<String>) -> Serving {
    Serving {
        name: manifest.package.name.clone(),
        version: manifest.package.version.clone(),
        sha256: sha256.to_owned(),
        workflows,
    }
}
