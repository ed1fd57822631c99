//! `workflow_packages`: packaged workflow archives, one per name and version.

use diesel::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::serialize_writes;
use crate::database::schema::workflow_packages as wp;
use crate::database::{AnyConnection, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::{WorkflowPackage, WorkflowPackageId};

#[derive(Insertable, Queryable, Selectable)]
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
}

impl From<PackageRow> for WorkflowPackage {
    fn from(r: PackageRow) -> Self {
        WorkflowPackage {
            id: r.id.into(),
            package_name: r.package_name,
            version: r.version,
            description: r.description,
            content: r.content,
            content_sha256: r.content_sha256,
            metadata: r.metadata.0,
            created_at: r.created_at.as_datetime(),
        }
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
    /// Free-form metadata.
    pub metadata: Value,
}

/// Stores a package; its SHA-256 is computed here. Fails with a unique violation if the name and
/// version already exist (packages are immutable: publish a new version instead).
pub fn insert(conn: &mut AnyConnection, new: NewPackage, now: UniversalTimestamp) -> Result<WorkflowPackageId> {
    let id = WorkflowPackageId::new();
    let digest = Sha256::digest(&new.content);
    let row = PackageRow {
        id: id.into(),
        package_name: new.package_name,
        version: new.version,
        description: new.description,
        content_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
        content: new.content,
        metadata: UniversalJson(new.metadata),
        created_at: now,
        updated_at: now,
    };
    serialize_writes(conn, |conn| diesel::insert_into(wp::table).values(&row).execute(conn))?;
    Ok(id)
}

/// The package `name` at `version`, content included.
pub fn get(conn: &mut AnyConnection, name: &str, version: &str) -> Result<Option<WorkflowPackage>> {
    let row = wp::table
        .filter(wp::package_name.eq(name))
        .filter(wp::version.eq(version))
        .select(PackageRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(WorkflowPackage::from))
}

/// Every package as `(name, version, sha256)`, without loading content.
pub fn list(conn: &mut AnyConnection) -> Result<Vec<(String, String, String)>> {
    Ok(wp::table
        .order((wp::package_name.asc(), wp::created_at.asc()))
        .select((wp::package_name, wp::version, wp::content_sha256))
        .load(conn)?)
}

/// Deletes the package `name` at `version`; returns whether it existed.
pub fn delete(conn: &mut AnyConnection, name: &str, version: &str) -> Result<bool> {
    let n = serialize_writes(conn, |conn| {
        diesel::delete(wp::table.filter(wp::package_name.eq(name)).filter(wp::version.eq(version))).execute(conn)
    })?;
    Ok(n == 1)
}
