//! Storing an uploaded archive for the workers (a server's `POST /api/v1/packages`): checked as
//! the daemon checks an archive it finds (unpacked within the limits, manifest, layout), then
//! recorded `uploaded` by [`ops::packages::upload`]. Compiling and loading are the workers' (see
//! [`super::daemon::Daemon::sync_stored`]); a package that then fails is recorded `failed` with
//! the reason.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::signing::PublicKey;
use super::{Error, Loader};
use crate::models::WorkflowPackage;
use crate::ops::{self, Refused};
use crate::Database;

/// Why an upload was not stored: the archive is not a valid package, or it conflicts with what is
/// stored (its version was already uploaded with other contents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not a valid package archive (the reason says what).
    #[error(transparent)]
    Invalid(#[from] Error),
    /// It conflicts with a stored package.
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// Checks `archive` with `loader`'s limits and stores it for the workers; returns the stored
/// package and whether it is new (the same archive again is the same package). With `trusted`
/// keys, only an archive whose `signature` (a `.sig` file's text) is by one of them and matches
/// its bytes is accepted, checked before the archive is opened; without, a signature is not
/// looked at.
pub async fn upload(
    db: &Database,
    loader: &Loader,
    archive: Vec<u8>,
    signature: Option<&str>,
    trusted: Option<&[PublicKey]>,
    now: DateTime<Utc>,
) -> Result<Result<(WorkflowPackage, bool), Rejected>, crate::Error> {
    if let Some(trusted) = trusted {
        if let Err(e) = super::signing::verify(&archive, signature, trusted) {
            return Ok(Err(e.into()));
        }
    }
    let (checker, bytes) = (loader.clone(), archive.clone());
    let checked =
        tokio::task::spawn_blocking(move || checker.unpack(&bytes).map(|u| u.manifest.clone())).await.map_err(|e| {
            crate::Error::InvalidSetting { setting: "packages", reason: format!("the checker stopped: {e}") }
        })?;
    let manifest = match checked {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.into())),
    };
    let arrival = ops::packages::Arrival {
        name: manifest.package.name.clone(),
        version: manifest.package.version.clone(),
        description: manifest.metadata.description.clone(),
        manifest: serde_json::to_value(&manifest).unwrap_or(Value::Null),
        workflows: manifest.metadata.workflow_name.iter().cloned().collect(),
        contents: Value::Null,
        archive,
    };
    Ok(db.run_with(move |c| ops::packages::upload(c, arrival, now)).await?.map_err(Rejected::from))
}
