//! `workflow_packages`: the package archives daemons and servers loaded, one row per name and
//! version, with the archive's bytes and hash, the manifest, and whether the load worked.

use diesel::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::serialize_writes;
use crate::database::schema::workflow_packages as wp;
use crate::database::{AnyConnection, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::{PackageStatus, WorkflowPackage, WorkflowPackageId};

use super::corrupt;

#[derive(Insertable)]
#[diesel(table_name = wp)]
struct PackageRow {
    id: UniversalUuid,
    package_name: String,
    version: String,
    description: Option<String>,
    content: Vec<u8>,
    content_sha256: String,
    metadata: UniversalJson,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
    status: String,
    error: Option<String>,
}

/// A row without its bytes.
#[derive(Queryable, Selectable)]
#[diesel(table_name = wp)]
struct SummaryRow {
    id: UniversalUuid,
    package_name: String,
    version: String,
    description: Option<String>,
    content_sha256: String,
    metadata: UniversalJson,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
    status: String,
    error: Option<String>,
}

impl TryFrom<SummaryRow> for WorkflowPackage {
    type Error = crate::database::Error;
    fn try_from(r: SummaryRow) -> Result<Self> {
        Ok(WorkflowPackage {
            id: r.id.into(),
            status: r.status.parse().map_err(|e| corrupt("workflow_packages", e))?,
            package_name: r.package_name,
            version: r.version,
            description: r.description,
            content_sha256: r.content_sha256,
            metadata: r.metadata.0,
            error: r.error,
            created_at: r.created_at.as_datetime(),
            updated_at: r.updated_at.as_datetime(),
        })
    }
}

/// A package to store.
#[derive(Debug, Clone)]
pub struct NewPackage {
    /// Package name.
    pub package_name: String,
    /// Package version; (name, version) is unique.
    pub version: String,
    /// Free-text description.
    pub description: Option<String>,
    /// The archive bytes.
    pub content: Vec<u8>,
    /// The manifest and what the package holds.
    pub metadata: Value,
    /// Whether its load worked.
    pub status: PackageStatus,
    /// Why it failed.
    pub error: Option<String>,
}

/// The hex SHA-256 of `bytes`, as `content_sha256` holds it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores a package; its SHA-256 is computed here. Fails with a unique violation if the name and
/// version already exist (a version is never reused: publish a new one instead).
pub fn insert(conn: &mut AnyConnection, new: NewPackage, now: UniversalTimestamp) -> Result<WorkflowPackageId> {
    let id = WorkflowPackageId::new();
    let row = PackageRow {
        id: id.into(),
        package_name: new.package_name,
        version: new.version,
        description: new.description,
        content_sha256: sha256_hex(&new.content),
        content: new.content,
        metadata: UniversalJson(new.metadata),
        created_at: now,
        updated_at: now,
        status: new.status.as_str().to_owned(),
        error: new.error,
    };
    serialize_writes(conn, |conn| diesel::insert_into(wp::table).values(&row).execute(conn))?;
    Ok(id)
}

/// The package `name` at `version` (without its bytes).
pub fn get(conn: &mut AnyConnection, name: &str, version: &str) -> Result<Option<WorkflowPackage>> {
    let row = wp::table
        .filter(wp::package_name.eq(name))
        .filter(wp::version.eq(version))
        .select(SummaryRow::as_select())
        .first(conn)
        .optional()?;
    row.map(WorkflowPackage::try_from).transpose()
}

/// The package with id `id` (without its bytes).
pub fn by_id(conn: &mut AnyConnection, id: WorkflowPackageId) -> Result<Option<WorkflowPackage>> {
    let row = wp::table.find(UniversalUuid::from(id)).select(SummaryRow::as_select()).first(conn).optional()?;
    row.map(WorkflowPackage::try_from).transpose()
}

/// The archive bytes of `name` at `version`.
pub fn content(conn: &mut AnyConnection, name: &str, version: &str) -> Result<Option<Vec<u8>>> {
    Ok(wp::table
        .filter(wp::package_name.eq(name))
        .filter(wp::version.eq(version))
        .select(wp::content)
        .first(conn)
        .optional()?)
}

/// The packages whose archive hashes to `sha256`.
pub fn by_sha(conn: &mut AnyConnection, sha256: &str) -> Result<Vec<WorkflowPackage>> {
    let rows: Vec<SummaryRow> =
        wp::table.filter(wp::content_sha256.eq(sha256)).select(SummaryRow::as_select()).load(conn)?;
    rows.into_iter().map(WorkflowPackage::try_from).collect()
}

/// Every package (without bytes), by name, then oldest first.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<WorkflowPackage>> {
    let rows: Vec<SummaryRow> =
        wp::table.order((wp::package_name.asc(), wp::created_at.asc())).select(SummaryRow::as_select()).load(conn)?;
    rows.into_iter().map(WorkflowPackage::try_from).collect()
}

/// Sets the status of `name` at `version` (and the error, for `failed`; cleared otherwise), only
/// if the row still holds the archive hashing to `sha256` and is still in status `expected`;
/// returns whether it changed a row (false: another writer changed it first).
#[allow(clippy::too_many_arguments)]
pub fn set_status(
    conn: &mut AnyConnection,
    name: &str,
    version: &str,
    sha256: &str,
    expected: PackageStatus,
    status: PackageStatus,
    error: Option<&str>,
    now: UniversalTimestamp,
) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(
            wp::table
                .filter(wp::package_name.eq(name))
                .filter(wp::version.eq(version))
                .filter(wp::content_sha256.eq(sha256))
                .filter(wp::status.eq(expected.as_str())),
        )
        .set((wp::status.eq(status.as_str()), wp::error.eq(error), wp::updated_at.eq(now)))
        .execute(conn)
    })?;
    Ok(n == 1)
}

/// Deletes the package `name` at `version`; returns whether it existed.
pub fn delete(conn: &mut AnyConnection, name: &str, version: &str) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::delete(wp::table.filter(wp::package_name.eq(name)).filter(wp::version.eq(version))).execute(conn)
    })?;
    Ok(n == 1)
}
