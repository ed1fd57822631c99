//! OpenAPI schemas of the statuses, which live in `cloacina-workflow` (no utoipa there): strings
//! limited to the statuses' names, read from their `ALL` lists so they cannot drift.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::Object;

use super::{PipelineStatus, TaskStatus};

fn names(what: &str, names: impl Iterator<Item = &'static str>) -> Object {
    ObjectBuilder::new().schema_type(Type::String).description(Some(what)).enum_values(Some(names)).build()
}

/// A [`PipelineStatus`] name.
pub fn pipeline_status() -> Object {
    names("Where a run stands", PipelineStatus::ALL.iter().map(|s| s.as_str()))
}

/// A [`TaskStatus`] name.
pub fn task_status() -> Object {
    names("Where a task stands", TaskStatus::ALL.iter().map(|s| s.as_str()))
}
