//! Workflow packages as the database records them (`workflow_packages`): what a daemon (and
//! later the server) loaded, with its archive, its manifest, what it holds, and whether its load
//! worked. The rules of admitting one are here, once:
//!
//! - a package version names one content: the same name and version with another archive is
//!   refused ([`Refused::VersionReused`]); the same archive again just records its new status;
//! - a workflow name belongs to one package: a package whose workflow another loaded package
//!   already defines is refused ([`Refused::WorkflowClaimed`]); a new version of the same package
//!   takes its workflows over.

use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::{json, Value};

use super::outcome::{Outcome, Refused};
use crate::dal::workflow_packages::{self as dal, NewPackage};
use crate::database::{AnyConnection, Error as DbError, UniversalTimestamp};
use crate::models::{PackageStatus, WorkflowPackage, WorkflowPackageId};
use crate::Error;

/// A package arriving to be recorded.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// `[package] name`.
    pub name: String,
    /// `[package] version`.
    pub version: String,
    /// `[metadata] description`.
    pub description: Option<String>,
    /// The manifest, as JSON.
    pub manifest: Value,
    /// The workflows it defines (empty when its load failed before it was known).
    pub workflows: Vec<String>,
    /// What it holds as its description says (workflows, tasks, triggers), if it got that far.
    pub contents: Value,
    /// The archive's bytes.
    pub archive: Vec<u8>,
}

/// Records `arrival` as loaded (`Ok(())`) or failed (`Err(why)`). Refused when its version was
/// already recorded with another archive, or, for a load, when another loaded package defines
/// one of its workflows.
pub fn admit(conn: &mut AnyConnection, arrival: Arrival, load: Result<(), String>, now: DateTime<Utc>) -> Outcome<()> {
    let sha256 = content_hash(&arrival.archive);
    let (status, error) = match &load {
        Ok(()) => (PackageStatus::Loaded, None),
        Err(why) => (PackageStatus::Failed, Some(why.as_str())),
    };
    if load.is_ok() {
        for other in dal::list(conn)? {
            if other.package_name == arrival.name || other.status != PackageStatus::Loaded {
                continue;
            }
            if let Some(workflow) = workflows_of(&other).into_iter().find(|w| arrival.workflows.contains(w)) {
                return Ok(Err(Refused::WorkflowClaimed { workflow, package: other.package_name }));
            }
        }
    }
    let stamp = UniversalTimestamp::from(now);
    // A few times at most: a racing daemon may insert the same version between the read and the
    // insert, or change its status between the read and the update.
    for _ in 0..3 {
        if let Some(existing) = dal::get(conn, &arrival.name, &arrival.version)? {
            if existing.content_sha256 != sha256 {
                return Ok(Err(Refused::VersionReused { package: arrival.name, version: arrival.version }));
            }
            let (name, version) = (&arrival.name, &arrival.version);
            if dal::set_status(conn, name, version, &sha256, existing.status, status, error, stamp)? {
                return Ok(Ok(()));
            }
            continue;
        }
        let new = NewPackage {
            package_name: arrival.name.clone(),
            version: arrival.version.clone(),
            description: arrival.description.clone(),
            content: arrival.archive.clone(),
            metadata: json!({
                "manifest": arrival.manifest,
                "workflows": arrival.workflows,
                "contents": arrival.contents,
            }),
            status,
            error: error.map(str::to_owned),
        };
        match dal::insert(conn, new, stamp) {
            Ok(_) => return Ok(Ok(())),
            Err(DbError::Query(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(vanished(&arrival.name, &arrival.version))
}

/// Marks `name` `version` (the archive hashing to `sha256`) removed, if it is loaded: its archive
/// was taken away. Its workflows start no new runs; runs in flight finish. Returns whether it was
/// loaded (a package that failed to load keeps its status and error).
pub fn remove(
    conn: &mut AnyConnection,
    name: &str,
    version: &str,
    sha256: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let (loaded, removed) = (PackageStatus::Loaded, PackageStatus::Removed);
    Ok(dal::set_status(conn, name, version, sha256, loaded, removed, None, now.into())?)
}

/// Stores `arrival`, uploaded to a server, as `uploaded` for the workers to load; returns the
/// stored package and whether it is new. The same archive again is the same package: when it had
/// failed or been removed it is `uploaded` again (the workers try it anew), otherwise unchanged.
/// The same name and version with another archive is refused.
pub fn upload(conn: &mut AnyConnection, arrival: Arrival, now: DateTime<Utc>) -> Outcome<(WorkflowPackage, bool)> {
    let sha256 = content_hash(&arrival.archive);
    let stamp = UniversalTimestamp::from(now);
    for _ in 0..3 {
        if let Some(existing) = dal::get(conn, &arrival.name, &arrival.version)? {
            if existing.content_sha256 != sha256 {
                return Ok(Err(Refused::VersionReused { package: arrival.name, version: arrival.version }));
            }
            let revive = matches!(existing.status, PackageStatus::Failed | PackageStatus::Removed);
            let (name, version, uploaded) = (&arrival.name, &arrival.version, PackageStatus::Uploaded);
            if revive {
                if !dal::set_status(conn, name, version, &sha256, existing.status, uploaded, None, stamp)? {
                    continue;
                }
                announce(conn)?;
            }
            let stored = dal::get(conn, name, version)?;
            return Ok(Ok((stored.ok_or_else(|| vanished(name, version))?, false)));
        }
        let new = NewPackage {
            package_name: arrival.name.clone(),
            version: arrival.version.clone(),
            description: arrival.description.clone(),
            content: arrival.archive.clone(),
            metadata: json!({ "manifest": arrival.manifest, "workflows": arrival.workflows, "contents": arrival.contents }),
            status: PackageStatus::Uploaded,
            error: None,
        };
        match dal::insert(conn, new, stamp) {
            Ok(id) => {
                announce(conn)?;
                let stored = dal::by_id(conn, id)?.ok_or_else(|| vanished(&arrival.name, &arrival.version))?;
                return Ok(Ok((stored, true)));
            }
            Err(DbError::Query(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(vanished(&arrival.name, &arrival.version))
}

/// Tells the workers (PostgreSQL: `NOTIFY`, heard by every runner's listener; a no-op on SQLite,
/// whose workers poll) that the stored packages changed, so they look at once.
fn announce(conn: &mut AnyConnection) -> Result<(), Error> {
    Ok(crate::database::notify_work(conn, crate::database::PACKAGES_CHANGED)?)
}

/// A package row that changed under us more often than a race explains.
fn vanished(name: &str, version: &str) -> Error {
    Error::Database(DbError::Corrupt {
        table: "workflow_packages",
        detail: format!("package {name} {version} kept changing while it was being recorded"),
    })
}

/// The package with id `id` (without its archive).
pub fn get(conn: &mut AnyConnection, id: WorkflowPackageId) -> Outcome<WorkflowPackage> {
    Ok(dal::by_id(conn, id)?.ok_or(Refused::NoPackage(id)))
}

/// Takes the package `id` away (a server's `DELETE`): recorded `removed`, so workers start no new
/// runs of its workflows and runs in flight finish. Removing a removed package changes nothing.
pub fn delete(conn: &mut AnyConnection, id: WorkflowPackageId, now: DateTime<Utc>) -> Outcome<WorkflowPackage> {
    for _ in 0..3 {
        let Some(p) = dal::by_id(conn, id)? else { return Ok(Err(Refused::NoPackage(id))) };
        if p.status == PackageStatus::Removed {
            return Ok(Ok(p));
        }
        let (name, version, sha) = (&p.package_name, &p.version, &p.content_sha256);
        if dal::set_status(conn, name, version, sha, p.status, PackageStatus::Removed, None, now.into())? {
            announce(conn)?;
            return get(conn, id);
        }
    }
    Err(Error::Database(DbError::Corrupt {
        table: "workflow_packages",
        detail: format!("package {id} kept changing while it was being deleted"),
    }))
}

/// Records a stored package a worker refused (its workflow belongs to another package) as
/// `failed` with `why`, if it is still `uploaded`; returns whether it changed it.
pub fn refuse(
    conn: &mut AnyConnection,
    name: &str,
    version: &str,
    sha256: &str,
    why: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let (uploaded, failed) = (PackageStatus::Uploaded, PackageStatus::Failed);
    Ok(dal::set_status(conn, name, version, sha256, uploaded, failed, Some(why), now.into())?)
}

/// Where one live runner stands with a package.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerLoad {
    /// The runner (worker or daemon) name.
    pub runner: String,
    /// Its host, for people.
    pub host: String,
    /// `serving`: new runs of the package's workflows start there; `draining`: the package was
    /// replaced or removed there and it finishes the runs in flight; `not_loaded`: it has none of
    /// the package's workflows (not yet, or its load failed, or it does not follow packages).
    pub state: String,
    /// When it last said it was alive.
    pub last_seen_at: DateTime<Utc>,
}

/// Where each live runner stands with `package`, read from what the runners record (the versions
/// they offer and retire) and the registry (a package's workflow versions carry its content hash
/// as their source).
pub fn workers(
    conn: &mut AnyConnection,
    package: &WorkflowPackage,
    now: DateTime<Utc>,
) -> Result<Vec<WorkerLoad>, Error> {
    let liveness = super::liveness::Liveness::read(conn, now)?;
    let versions: Vec<&str> = liveness
        .registry()
        .iter()
        .filter(|e| e.graph.get("source").and_then(Value::as_str) == Some(package.content_sha256.as_str()))
        .map(|e| e.version.as_str())
        .collect();
    let mut loads: Vec<WorkerLoad> = liveness
        .runners()
        .iter()
        .map(|r| {
            let has = |list: &[String]| list.iter().any(|v| versions.contains(&v.as_str()));
            let state = if has(&r.workflow_versions) {
                "serving"
            } else if has(&r.retired_versions) {
                "draining"
            } else {
                "not_loaded"
            };
            WorkerLoad {
                runner: r.runner_name.clone(),
                host: r.host_name.clone(),
                state: state.to_owned(),
                last_seen_at: r.last_seen_at,
            }
        })
        .collect();
    // A worker runs a Python package in a child runner of its own (`python_runner_name`): where a
    // child has the package, the child's row speaks for that worker, and the parent's own
    // runner, which never loads Python packages, is not listed as `not_loaded`.
    let children: Vec<(String, bool)> = loads.iter().map(|l| (l.runner.clone(), l.state != "not_loaded")).collect();
    loads.retain(|l| {
        l.state != "not_loaded"
            || !children.iter().any(|(child, has)| *has && child.starts_with(&format!("{}{PYTHON_RUNNER}", l.runner)))
    });
    loads.sort_by(|a, b| a.runner.cmp(&b.runner));
    Ok(loads)
}

/// What joins a worker's runner name and a Python package's hash in the name of the child runner
/// that runs the package.
const PYTHON_RUNNER: &str = "-python-";

/// The name of the runner a worker called `parent` starts to run the Python package with content
/// hash `sha256` (its first 12 digits: one runner per package version).
pub fn python_runner_name(parent: &str, sha256: &str) -> String {
    format!("{parent}{PYTHON_RUNNER}{}", &sha256[..sha256.len().min(12)])
}

/// The archive of package `name` at `version`, to load it.
pub fn archive(conn: &mut AnyConnection, name: &str, version: &str) -> Result<Option<Vec<u8>>, Error> {
    Ok(dal::content(conn, name, version)?)
}

/// The lowercase hex SHA-256 of `bytes`: a package's content hash, as `content_sha256` holds it.
pub fn content_hash(bytes: &[u8]) -> String {
    dal::sha256_hex(bytes)
}

/// Every recorded package (without its archive), by name, oldest version first.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<WorkflowPackage>, Error> {
    Ok(dal::list(conn)?)
}

/// The workflows a recorded package defines.
pub fn workflows_of(package: &WorkflowPackage) -> Vec<String> {
    package
        .metadata
        .get("workflows")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}
