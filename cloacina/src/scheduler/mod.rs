//! The scheduler: after a task reaches a terminal status, decides its dependents (Ready or Skipped
//! by their trigger rules, cascading skips), then finalises the pipeline when nothing is left.
//!
//! Only the finished task's dependents and their dependencies are read, so the cost per task
//! stays flat as pipelines grow. Every decision is a conditional update from `NotStarted`, so two
//! runners deciding the same task cannot both win.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::dal::pipeline_executions::{self as pipelines, PipelineEnd};
use crate::dal::task_executions as tasks;
use crate::database::UniversalTimestamp;
use crate::executor::ExecutionResult;
use crate::models::{PipelineExecutionId, PipelineStatus, TaskExecutionId, TaskStatus};
use crate::runner::{Engine, PipelineInfo};
use crate::task::TriggerRule;
use crate::workflow::Workflow;
use crate::{Context, Error};

/// Reacts to `finished` of the pipeline reaching a terminal status.
///
/// `maybe_last` is false when the caller knows another task of the pipeline is still running in
/// this runner (that task will check for the end); the pipeline cannot have finished then, nor
/// when this call just made a task Ready, so the finish check is skipped in both cases.
pub(crate) async fn after_outcome(
    engine: &Arc<Engine>,
    info: &PipelineInfo,
    finished: &str,
    maybe_last: bool,
) -> Result<(), Error> {
    let Some(wf) = &info.workflow else { return Ok(()) };
    let frontier = wf.spec().dependents(finished).map(|t| t.id.clone()).collect();
    let made_ready = resolve(engine, info, wf, frontier).await?;
    if maybe_last && made_ready == 0 {
        finalize(engine, info, wf).await?;
    }
    Ok(())
}

/// Finalises pipeline `id` if none of its tasks is left unfinished (after a resume).
pub(crate) async fn finalize_if_done(engine: &Arc<Engine>, id: PipelineExecutionId) -> Result<(), Error> {
    let info = engine.pipeline_info(id).await?;
    let Some(wf) = &info.workflow else { return Ok(()) };
    finalize(engine, &info, wf).await
}

/// Resolves root tasks whose trigger rule did not hold on the input (they start `NotStarted`).
pub(crate) async fn skip_roots(
    engine: &Arc<Engine>,
    pipeline: PipelineExecutionId,
    roots: Vec<String>,
) -> Result<(), Error> {
    let info = engine.pipeline_info(pipeline).await?;
    let Some(wf) = &info.workflow else { return Ok(()) };
    resolve(engine, &info, wf, roots).await?;
    finalize(engine, &info, wf).await
}

fn uses_context(rule: &TriggerRule) -> bool {
    match rule {
        TriggerRule::ContextValue { .. } => true,
        TriggerRule::All { rules } | TriggerRule::Any { rules } | TriggerRule::None { rules } => {
            rules.iter().any(uses_context)
        }
        _ => false,
    }
}

/// Decides every `NotStarted` task in `frontier` whose dependencies are all terminal, and the
/// dependents of those it skips, until nothing more can be decided. Returns how many it made Ready.
async fn resolve(
    engine: &Arc<Engine>,
    p: &PipelineInfo,
    wf: &Workflow,
    mut frontier: Vec<String>,
) -> Result<usize, Error> {
    let spec = wf.spec();
    let mut made_ready = 0;
    while !frontier.is_empty() {
        frontier.sort();
        frontier.dedup();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for name in &frontier {
            let Some(t) = spec.task(name) else { continue };
            names.insert(t.id.clone());
            names.extend(t.dependencies.iter().cloned());
            names.extend(t.trigger_rule.referenced_tasks().into_iter().map(str::to_owned));
        }
        let (pid, wanted) = (p.id, names.into_iter().collect::<Vec<_>>());
        let rows = engine.db.run(move |c| tasks::by_name(c, pid, &wanted)).await?;
        let ids: HashMap<String, TaskExecutionId> = rows.iter().map(|(n, id, _)| (n.clone(), *id)).collect();
        let statuses: HashMap<String, TaskStatus> = rows.into_iter().map(|(n, _, s)| (n, s)).collect();
        let (mut ready, mut skipped) = (Vec::new(), Vec::new());
        for name in &frontier {
            let Some(t) = spec.task(name) else { continue };
            let decidable = statuses.get(name) == Some(&TaskStatus::NotStarted)
                && t.dependencies.iter().all(|d| statuses.get(d).is_some_and(|s| s.is_terminal()));
            if !decidable {
                continue;
            }
            let ctx = if uses_context(&t.trigger_rule) {
                crate::executor::input_context(&engine.db, p, &t.dependencies).await?
            } else {
                Context::new()
            };
            if t.trigger_rule.evaluate(&t.dependencies, &statuses, &ctx) {
                ready.push(name.clone());
            } else {
                skipped.push(name.clone());
            }
        }
        let pick = |names: &[String]| names.iter().filter_map(|n| ids.get(n).copied()).collect::<Vec<_>>();
        let (ready_ids, skipped_ids) = (pick(&ready), pick(&skipped));
        let (ready_n, moved_skipped) = engine
            .db
            .run(move |c| {
                let now = UniversalTimestamp::now();
                let moved_ready = tasks::resolve_not_started(c, &ready_ids, TaskStatus::Ready, now)?;
                Ok((moved_ready.len(), tasks::resolve_not_started(c, &skipped_ids, TaskStatus::Skipped, now)?))
            })
            .await?;
        let skipped_names: Vec<&String> =
            skipped.iter().filter(|n| ids.get(*n).is_some_and(|id| moved_skipped.contains(id))).collect();
        if ready_n > 0 {
            made_ready += ready_n;
            engine.work_available.notify_one();
        }
        frontier = skipped_names.iter().flat_map(|n| spec.dependents(n).map(|t| t.id.clone())).collect();
    }
    Ok(made_ready)
}

/// Ends the pipeline, `Completed` with its final context or `Failed`, once no task is left
/// unfinished, and hands the result to waiters in this process (no re-read). Safe to call from
/// several runners: the end is conditional, and only the caller that made it reports it.
async fn finalize(engine: &Arc<Engine>, p: &PipelineInfo, wf: &Workflow) -> Result<(), Error> {
    let (id, input, created_at) = (p.id, p.input.to_json(), p.created_at);
    let order: Vec<String> = wf.spec().tasks().iter().map(|t| t.id.clone()).collect();
    let ended = engine
        .db
        .run(move |c| {
            if tasks::has_unfinished(c, id)? {
                return Ok(None);
            }
            let outcomes = tasks::outcomes(c, id)?;
            let error = outcomes
                .iter()
                .find(|t| t.status == TaskStatus::Failed)
                .map(|t| format!("task `{}` failed", t.task_name));
            // Final context: the input, then every completed task's output in topological order.
            let mut fin = serde_json::Value::Object(Default::default());
            if error.is_none() {
                fin = input;
                let outs: HashMap<&str, &serde_json::Value> =
                    outcomes.iter().filter_map(|t| Some((t.task_name.as_str(), t.output.as_ref()?))).collect();
                for name in &order {
                    if let (Some(serde_json::Value::Object(out)), serde_json::Value::Object(acc)) =
                        (outs.get(name.as_str()), &mut fin)
                    {
                        acc.extend(out.clone());
                    }
                }
            }
            let now = UniversalTimestamp::now();
            let end = match &error {
                Some(error) => PipelineEnd::Failed { error },
                None => PipelineEnd::Completed { final_context: &fin },
            };
            if !pipelines::finish(c, id, end, now)? {
                return Ok(None);
            }
            Ok(Some((error, fin, outcomes, now)))
        })
        .await?;
    let Some((error, fin, outcomes, now)) = ended else { return Ok(()) };
    let result = ExecutionResult {
        execution_id: id,
        workflow_name: p.workflow_name.clone(),
        status: if error.is_some() { PipelineStatus::Failed } else { PipelineStatus::Completed },
        final_context: Context::from_json(fin)?,
        task_results: outcomes.iter().map(crate::executor::task_result).collect(),
        error_message: error,
        duration: crate::executor::elapsed(Some(created_at), Some(now.as_datetime())).unwrap_or_default(),
    };
    engine.pipeline_finished(id, Some(result));
    Ok(())
}
