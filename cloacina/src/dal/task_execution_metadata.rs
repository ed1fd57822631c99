//! `task_execution_metadata`: links a completed task to its output context.

use diesel::prelude::*;
use serde_json::Value;

use crate::database::schema::{contexts, task_execution_metadata as tem};
use crate::database::{AnyConnection, Result, UniversalJson, UniversalUuid};
use crate::models::{PipelineExecutionId, TaskExecutionId};

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
    let rows: Vec<(String, Option<UniversalJson>)> = tem::table
        .filter(tem::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .select((tem::task_name, output_value()))
        .load(conn)?;
    Ok(with_outputs(rows))
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
    let rows: Vec<(String, Option<UniversalJson>)> = super::in_chunks(names, |names| {
        Ok(tem::table
            .filter(tem::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
            .filter(tem::task_name.eq_any(names))
            .select((tem::task_name, output_value()))
            .load(conn)?)
    })?;
    Ok(with_outputs(rows))
}

/// A metadata row's output context, looked up by primary key for each row.
///
/// Not a join on purpose: PostgreSQL estimates the rows of one pipeline from the average over all
/// pipelines, which one 10,000-task pipeline inflates to hundreds; for a 4-task pipeline it then
/// hashed the whole `contexts` table (measured: 15–25 ms per call once it held 27k rows, against
/// well under 0.1 ms for the per-row lookup). A scalar subquery is always one index probe per row.
fn output_value() -> OutputValue {
    contexts::table.filter(contexts::id.nullable().eq(tem::context_id)).select(contexts::value).single_value()
}

type OutputValue = diesel::dsl::SingleValue<
    diesel::dsl::Select<
        diesel::dsl::Filter<contexts::table, diesel::dsl::Eq<diesel::dsl::Nullable<contexts::id>, tem::context_id>>,
        contexts::value,
    >,
>;

fn with_outputs(rows: Vec<(String, Option<UniversalJson>)>) -> Vec<(String, Value)> {
    rows.into_iter().filter_map(|(name, v)| Some((name, v?.0))).collect()
}
