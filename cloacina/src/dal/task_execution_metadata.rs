//! `task_execution_metadata`: links a completed task to its output context.

use diesel::prelude::*;
use serde_json::Value;

use crate::database::schema::{contexts, task_execution_metadata as tem};
use crate::database::{AnyConnection, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::{ContextId, PipelineExecutionId, TaskExecutionId};

#[derive(Insertable)]
#[diesel(table_name = tem)]
struct NewMetadataRow<'a> {
    id: UniversalUuid,
    task_execution_id: UniversalUuid,
    pipeline_execution_id: UniversalUuid,
    task_name: &'a str,
    context_id: Option<UniversalUuid>,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

/// Records a task's output context. Called by [`super::task_executions::complete`] inside its
/// fenced transaction, so a task has at most one metadata row.
pub(crate) fn insert(
    conn: &mut AnyConnection,
    task: TaskExecutionId,
    pipeline: PipelineExecutionId,
    task_name: &str,
    context: Option<ContextId>,
    now: UniversalTimestamp,
) -> Result<()> {
    let row = NewMetadataRow {
        id: UniversalUuid::new_v4(),
        task_execution_id: task.into(),
        pipeline_execution_id: pipeline.into(),
        task_name,
        context_id: context.map(Into::into),
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(tem::table).values(&row).execute(conn)?;
    Ok(())
}

/// The output context of one completed task, if it has one.
pub fn output_of(conn: &mut AnyConnection, task: TaskExecutionId) -> Result<Option<Value>> {
    let value = tem::table
        .inner_join(contexts::table)
        .filter(tem::task_execution_id.eq(UniversalUuid::from(task)))
        .select(contexts::value)
        .first::<UniversalJson>(conn)
        .optional()?;
    Ok(value.map(|v| v.0))
}

/// The output context of every completed task of a pipeline, as `(task_name, context)`.
pub fn outputs_for_pipeline(conn: &mut AnyConnection, pipeline: PipelineExecutionId) -> Result<Vec<(String, Value)>> {
    let rows: Vec<(String, UniversalJson)> = tem::table
        .inner_join(contexts::table)
        .filter(tem::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .select((tem::task_name, contexts::value))
        .load(conn)?;
    Ok(rows.into_iter().map(|(name, v)| (name, v.0)).collect())
}

/// The output context of each named completed task of a pipeline, as `(task_name, context)`.
pub fn outputs_of(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    names: &[String],
) -> Result<Vec<(String, Value)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, UniversalJson)> = tem::table
        .inner_join(contexts::table)
        .filter(tem::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .filter(tem::task_name.eq_any(names))
        .select((tem::task_name, contexts::value))
        .load(conn)?;
    Ok(rows.into_iter().map(|(name, v)| (name, v.0)).collect())
}
