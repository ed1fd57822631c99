//! [`Runs`]: what this process knows of the runs it works on: the facts of an active run that
//! never change (read once per run, bounded), and who in this process waits for a run's end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::watch;

use super::Catalog;
use crate::dal::pipeline_executions as pipelines;
use crate::dal::task_execution_metadata as outputs;
use crate::database::AnyConnection;
use crate::models::PipelineExecutionId;
use crate::results::ExecutionResult;
use crate::workflow::Workflow;
use crate::Context;

/// What a waiter for a pipeline hears.
#[derive(Clone)]
pub(crate) enum Ending {
    /// Not ended (as far as this process knows).
    Running,
    /// Ended; with the result when the process that ended it is this one.
    Ended(Option<Arc<ExecutionResult>>),
}

/// Most pipelines whose facts are cached at once.
const PIPELINE_CACHE_LIMIT: usize = 10_000;

/// The facts of a pipeline that never change while it runs.
pub(crate) struct PipelineInfo {
    pub(crate) id: PipelineExecutionId,
    pub(crate) workflow_name: String,
    /// The workflow, if this runner has the version the pipeline started with.
    pub(crate) workflow: Option<Workflow>,
    /// When the pipeline was created (a result's duration starts there).
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
    /// The pipeline's input context.
    pub(crate) input: Context<Value>,
}

/// The runs this process works on: their cached facts and who waits for their end.
pub(crate) struct Runs {
    catalog: Arc<Catalog>,
    /// Waiters for a pipeline's end, told when this process ends one (with the result) or
    /// cancels it (without).
    waiters: Mutex<HashMap<PipelineExecutionId, watch::Sender<Ending>>>,
    /// What every task of an active pipeline needs and never changes: read once per pipeline.
    facts: Mutex<HashMap<PipelineExecutionId, Arc<PipelineInfo>>>,
}

impl Runs {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog, waiters: Mutex::default(), facts: Mutex::default() }
    }

    /// A receiver that hears when pipeline `id` ends in this process.
    pub(crate) fn waiter(&self, id: PipelineExecutionId) -> watch::Receiver<Ending> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.entry(id).or_insert_with(|| watch::channel(Ending::Running).0).subscribe()
    }

    /// The pipelines someone in this process waits for.
    pub(crate) fn waited_pipelines(&self) -> Vec<PipelineExecutionId> {
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        waiters.iter().filter(|(_, w)| w.receiver_count() > 0).map(|(id, _)| *id).collect()
    }

    /// Drops the waiter entry of `id` once nobody listens (it ended in another process).
    pub(crate) fn forget_waiter(&self, id: PipelineExecutionId) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        if waiters.get(&id).is_some_and(|w| w.receiver_count() == 0) {
            waiters.remove(&id);
        }
    }

    /// Wakes everyone waiting for `id` in this process, handing them `result` when the caller
    /// has it (they read it from the database otherwise), and drops the pipeline's cached facts.
    pub(crate) fn pipeline_finished(&self, id: PipelineExecutionId, result: Option<ExecutionResult>) {
        self.facts.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        let waiter = self.waiters.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        if let Some(w) = waiter {
            w.send_replace(Ending::Ended(result.map(Arc::new)));
        }
    }

    /// The cached facts of pipeline `id`, if this runner has read them.
    pub(crate) fn cached_pipeline(&self, id: PipelineExecutionId) -> Option<Arc<PipelineInfo>> {
        self.facts.lock().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// The unchanging facts of pipeline `id`, from the cache or read on `conn`; `None` if there
    /// is no such pipeline.
    pub(crate) fn pipeline_info_in(
        &self,
        conn: &mut AnyConnection,
        id: PipelineExecutionId,
    ) -> Result<Option<Arc<PipelineInfo>>, crate::Error> {
        if let Some(info) = self.cached_pipeline(id) {
            return Ok(Some(info));
        }
        let Some((p, input)) = pipelines::get_with_input(conn, id)? else { return Ok(None) };
        let info = Arc::new(PipelineInfo {
            id,
            workflow: self.catalog.now().workflow(&p.workflow_name, &p.workflow_version).cloned(),
            workflow_name: p.workflow_name,
            created_at: p.created_at,
            input: Context::from_value(input)?,
        });
        let mut cache = self.facts.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= PIPELINE_CACHE_LIMIT {
            cache.clear(); // entries of pipelines finished by other runners are never removed otherwise
        }
        cache.insert(id, info.clone());
        Ok(Some(info))
    }
}

/// A task's input: the pipeline input, then each dependency's output in declared order (later
/// keys win).
pub(crate) fn input_context(
    conn: &mut AnyConnection,
    info: &PipelineInfo,
    dependencies: &[String],
) -> Result<Context<Value>, crate::Error> {
    if dependencies.is_empty() {
        return Ok(info.input.clone());
    }
    let outs = outputs::outputs_of(conn, info.id, dependencies)?;
    merge_outputs(info, dependencies, |dep| outs.iter().find(|(name, _)| name == dep).map(|(_, out)| out))
}

/// The pipeline input merged with the outputs `output_of` gives for `dependencies`, in declared
/// order (a dependency without output, Failed or Skipped, adds nothing).
pub(crate) fn merge_outputs<'a>(
    info: &PipelineInfo,
    dependencies: &[String],
    output_of: impl Fn(&str) -> Option<&'a Value>,
) -> Result<Context<Value>, crate::Error> {
    let mut ctx = info.input.clone();
    for dep in dependencies {
        if let Some(out) = output_of(dep) {
            ctx.merge(&Context::from_value(out.clone())?);
        }
    }
    Ok(ctx)
}
