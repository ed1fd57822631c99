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
use crate::models::{PackageStatus, WorkflowPackage};
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
    Err(Error::Database(DbError::Corrupt {
        table: "workflow_packages",
        detail: format!("{} {} kept changing while it was recorded", arrival.name, arrival.version),
    }))
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
