//! The scheduler: decides what follows from tasks reaching terminal statuses, inside the
//! transaction that records them, so a crash or a failed statement can never separate an outcome
//! from its consequences.
//!
//! - [`create_pipeline`] writes a new pipeline's rows and decides its roots (a root whose trigger
//!   rule fails on the input is Skipped, and so on down the graph).
//! - [`settle`] follows finished tasks: their dependents whose dependencies are now all terminal
//!   become Ready or Skipped by their trigger rules (skips cascade), and a pipeline with nothing
//!   left unfinished ends, Completed with its final context or Failed.
//! - [`settle_all`] does the same for every undecided task of a pipeline (resume, reconcile).
//!
//! The callers hold the pipeline's row lock ([`pipelines::lock`]), so two runners settling one
//! pipeline take turns and the later sees the earlier's writes. Only the finished tasks'
//! dependents and their dependencies are read, so the cost per outcome stays flat as pipelines
//! grow. Every decision is a conditional update from `NotStarted`.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::dal::pipeline_executions::{self as pipelines, NewPipeline, PipelineEnd};
use crate::dal::task_execution_metadata as outputs;
use crate::dal::task_executions::{self as tasks, NewTask};
use crate::database::{AnyConnection, UniversalTimestamp};
use crate::engine::{input_context, merge_outputs, PipelineInfo};
use crate::faults::{FaultPoint, FaultTiming, Faults};
use crate::models::{PipelineExecutionId, PipelineStatus, TaskExecution, TaskStatus};
use crate::results::{execution_result, ExecutionResult};
use crate::task::{TaskOutcomes, TriggerRule};
use crate::workflow::Workflow;
use crate::{Context, Error};

/// What settling a pipeline did.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Tasks it made Ready.
    pub(crate) made_ready: usize,
    /// Tasks it decided (Ready or Skipped).
    pub(crate) decided: usize,
    /// The pipeline's result, when this call ended it.
    pub(crate) ended: Option<ExecutionResult>,
}

/// Writes pipeline `id` of `wf` with input `input` (the caller's transaction) and decides its
/// roots: those whose trigger rule holds on the input start Ready, the others are decided at once
/// (Skipped, with their dependents). Returns the result when that already ends the pipeline
/// (every task skipped).
pub(crate) fn create_pipeline(
    conn: &mut AnyConnection,
    faults: &Faults,
    id: PipelineExecutionId,
    wf: &Workflow,
    input: &Context<Value>,
    now: UniversalTimestamp,
) -> Result<Option<ExecutionResult>, Error> {
    // Every way a run starts (a runner, an operator, cron, a trigger) comes through here.
    crate::input::context("context", input)?;
    let no_outcomes = crate::task::TaskOutcomes::new();
    let mut held_back = Vec::new();
    let tasks = wf
        .spec()
        .tasks()
        .iter()
        .map(|t| {
            let root = t.dependencies.is_empty();
            let ready = root && t.trigger_rule.evaluate(&[], &no_outcomes, input);
            if root && !ready {
                held_back.push(t.id.clone());
            }
            NewTask::of(t, ready)
        })
        .collect();
    let new = NewPipeline {
        workflow_name: wf.name().to_owned(),
        workflow_version: wf.version().to_owned(),
        input: input.to_value(),
        tasks,
    };
    pipelines::create(conn, id, &new, now)?;
    if held_back.is_empty() {
        return Ok(None);
    }
    let info = PipelineInfo {
        id,
        workflow_name: wf.name().to_owned(),
        workflow: Some(wf.clone()),
        created_at: now.as_datetime(),
        input: input.clone(),
    };
    let settled = decide(conn, faults, &info, wf, held_back, now)?;
    Ok(settled.ended)
}

/// Follows `finished` tasks of one pipeline (now terminal): decides their dependents and ends the
/// pipeline when nothing is left. The caller holds the pipeline's lock.
pub(crate) fn settle(
    conn: &mut AnyConnection,
    faults: &Faults,
    info: &PipelineInfo,
    finished: &[String],
    now: UniversalTimestamp,
) -> Result<Settled, Error> {
    let Some(wf) = &info.workflow else { return Ok(Settled::default()) };
    let frontier = finished.iter().flat_map(|f| wf.spec().dependents(f).map(|t| t.id.clone())).collect();
    decide(conn, faults, info, wf, frontier, now)
}

/// Tasks the scheduler may claim for this runner as it decides they run, instead of leaving them
/// Ready for a claim statement: the completer fills the slots its batch frees this way (a chain
/// step is then one conditional update instead of a Ready update, a claim query and a claim
/// update). The claims carry `stamp`, like the completer's other claims.
pub(crate) struct DirectClaim<'a> {
    pub(crate) runner: &'a str,
    pub(crate) lease: std::time::Duration,
    pub(crate) stamp: UniversalTimestamp,
    /// How many more tasks it may claim.
    pub(crate) budget: usize,
    /// The tasks claimed so far.
    pub(crate) claimed: Vec<TaskExecution>,
}

/// Decides the dependents of `finished` tasks of one pipeline, which this transaction just made
/// terminal (with those statuses): Ready or Skipped by their trigger rules, skips cascading; up
/// to `claim`'s budget of the Ready ones are claimed directly. Returns how many became Ready and
/// were not claimed. The caller holds the pipeline's lock and checks the pipeline's end itself
/// ([`finish_if_done`]) unless it knows of unfinished tasks.
pub(crate) fn decide_dependents(
    conn: &mut AnyConnection,
    faults: &Faults,
    info: &PipelineInfo,
    finished: &[(String, TaskStatus)],
    claim: &mut DirectClaim<'_>,
    now: UniversalTimestamp,
) -> Result<usize, Error> {
    let Some(wf) = &info.workflow else { return Ok(0) };
    let frontier = finished.iter().flat_map(|(f, _)| wf.spec().dependents(f).map(|t| t.id.clone())).collect();
    let known = finished.iter().cloned().collect();
    Ok(resolve(conn, faults, info, wf, frontier, known, Some(claim), now)?.0)
}

/// Ends the pipeline if none of its tasks is left unfinished; its result when this call ended it.
/// `recorded` holds outputs this transaction wrote (by task name), which need not be read back.
pub(crate) fn finish_if_done(
    conn: &mut AnyConnection,
    faults: &Faults,
    info: &PipelineInfo,
    recorded: &[(&str, &Value)],
    now: UniversalTimestamp,
) -> Result<Option<ExecutionResult>, Error> {
    let Some(wf) = &info.workflow else { return Ok(None) };
    end_if_done(conn, faults, info, wf, recorded, now)
}

/// Decides every undecided task of the pipeline whose dependencies are terminal, then ends it if
/// nothing is left. For a resumed pipeline and for one recovery found standing still. The caller
/// holds the pipeline's lock.
pub(crate) fn settle_all(
    conn: &mut AnyConnection,
    faults: &Faults,
    info: &PipelineInfo,
    now: UniversalTimestamp,
) -> Result<Settled, Error> {
    let Some(wf) = &info.workflow else { return Ok(Settled::default()) };
    let frontier = wf.spec().tasks().iter().map(|t| t.id.clone()).collect();
    decide(conn, faults, info, wf, frontier, now)
}

/// Decides the `frontier` tasks (and what their skips lead to), then ends the pipeline if nothing
/// is left to run.
fn decide(
    conn: &mut AnyConnection,
    faults: &Faults,
    info: &PipelineInfo,
    wf: &Workflow,
    frontier: Vec<String>,
    now: UniversalTimestamp,
) -> Result<Settled, Error> {
    let (made_ready, decided) = resolve(conn, faults, info, wf, frontier, TaskOutcomes::new(), None, now)?;
    let ended = if made_ready == 0 { end_if_done(conn, faults, info, wf, &[], now)? } else { None };
    Ok(Settled { made_ready, decided, ended })
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
/// dependents of those it skips, until nothing more can be decided. Returns how many it made Ready
/// (and did not claim) and how many it decided.
///
/// `known` holds statuses this transaction wrote. When they cover every dependency (and task a
/// trigger rule names) of the frontier, nothing is read: a frontier task's own status is left to
/// the conditional updates, which move only `NotStarted` rows.
#[allow(clippy::too_many_arguments)]
fn resolve(
    conn: &mut AnyConnection,
    faults: &Faults,
    p: &PipelineInfo,
    wf: &Workflow,
    mut frontier: Vec<String>,
    mut known: TaskOutcomes,
    mut claim: Option<&mut DirectClaim<'_>>,
    now: UniversalTimestamp,
) -> Result<(usize, usize), Error> {
    let spec = wf.spec();
    let (mut made_ready, mut decided) = (0, 0);
    while !frontier.is_empty() {
        frontier.sort();
        frontier.dedup();
        let mut inputs: BTreeSet<String> = BTreeSet::new();
        let mut must_read = false;
        for name in &frontier {
            let Some(t) = spec.task(name) else { continue };
            inputs.extend(t.dependencies.iter().cloned());
            inputs.extend(t.trigger_rule.referenced_tasks().into_iter().map(str::to_owned));
            must_read |= uses_context(&t.trigger_rule);
        }
        if must_read || inputs.iter().any(|n| !known.contains_key(n)) {
            let names: Vec<String> = inputs.into_iter().chain(frontier.iter().cloned()).collect();
            known.extend(tasks::by_name(conn, p.id, &names)?.into_iter().map(|(n, _, s)| (n, s)));
        }
        let (mut ready, mut skipped) = (Vec::new(), Vec::new());
        for name in &frontier {
            let Some(t) = spec.task(name) else { continue };
            let undecided = known.get(name).is_none_or(|s| *s == TaskStatus::NotStarted);
            let decidable = undecided && t.dependencies.iter().all(|d| known.get(d).is_some_and(|s| s.is_terminal()));
            if !decidable {
                continue;
            }
            let ctx =
                if uses_context(&t.trigger_rule) { input_context(conn, p, &t.dependencies)? } else { Context::new() };
            if t.trigger_rule.evaluate(&t.dependencies, &known, &ctx) {
                ready.push(name.clone());
            } else {
                skipped.push(name.clone());
            }
        }
        if ready.is_empty() && skipped.is_empty() {
            break;
        }
        faults.check(FaultPoint::ResolveDependents, FaultTiming::Before)?;
        if let Some(c) = claim.as_deref_mut().filter(|c| c.budget > 0) {
            let take = ready.len().min(c.budget);
            let taken = tasks::claim_not_started(conn, p.id, &ready[..take], c.runner, c.lease, c.stamp)?;
            ready.retain(|n| !taken.iter().any(|t| &t.task_name == n));
            decided += taken.len();
            c.budget -= taken.len();
            known.extend(taken.iter().map(|t| (t.task_name.clone(), TaskStatus::Running)));
            if !taken.is_empty() {
                let names: Vec<&str> = taken.iter().map(|t| t.task_name.as_str()).collect();
                tracing::debug!(pipeline = %p.id, tasks = ?names, "tasks ready, claimed by this runner");
            }
            c.claimed.extend(taken);
        }
        let moved_ready = tasks::resolve_not_started(conn, p.id, &ready, TaskStatus::Ready, now)?;
        let moved_skipped = tasks::resolve_not_started(conn, p.id, &skipped, TaskStatus::Skipped, now)?;
        if !moved_ready.is_empty() {
            tracing::debug!(pipeline = %p.id, tasks = ?moved_ready, "tasks ready");
        }
        if !moved_skipped.is_empty() {
            tracing::debug!(pipeline = %p.id, tasks = ?moved_skipped, "tasks skipped by their trigger rules");
        }
        made_ready += moved_ready.len();
        decided += moved_ready.len() + moved_skipped.len();
        known.extend(moved_ready.into_iter().map(|n| (n, TaskStatus::Ready)));
        frontier = moved_skipped.iter().flat_map(|n| spec.dependents(n).map(|t| t.id.clone())).collect();
        known.extend(moved_skipped.into_iter().map(|n| (n, TaskStatus::Skipped)));
    }
    Ok((made_ready, decided))
}

/// The completed task that ended last (by completion time; the later in topological order on a
/// tie), if any.
fn last_completed(wf: &Workflow, outcomes: &[tasks::TaskOutcome]) -> Option<String> {
    let order: HashMap<&str, usize> = wf.spec().tasks().iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    outcomes
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .max_by_key(|t| (t.completed_at, order.get(t.task_name.as_str()).copied()))
        .map(|t| t.task_name.clone())
}

/// Ends the pipeline, `Completed` with its final context or `Failed`, if none of its tasks is left
/// unfinished; returns its result when this call ended it. The end is conditional on the pipeline
/// being Pending or Running (a paused one ends when resumed).
fn end_if_done(
    conn: &mut AnyConnection,
    faults: &Faults,
    p: &PipelineInfo,
    wf: &Workflow,
    recorded: &[(&str, &Value)],
    now: UniversalTimestamp,
) -> Result<Option<ExecutionResult>, Error> {
    if tasks::has_unfinished(conn, p.id)? {
        return Ok(None);
    }
    let outcomes = tasks::outcomes(conn, p.id)?;
    let error =
        outcomes.iter().find(|t| t.status == TaskStatus::Failed).map(|t| format!("task `{}` failed", t.task_name));
    let completed: HashSet<&str> =
        outcomes.iter().filter(|t| t.status == TaskStatus::Completed).map(|t| t.task_name.as_str()).collect();
    let last = last_completed(wf, &outcomes);
    let ends = wf.spec().final_context_sources(error.is_some(), |t| completed.contains(t), last.as_deref());
    let known = |t: &str| recorded.iter().find(|(name, _)| *name == t).map(|(_, out)| *out);
    let unread: Vec<String> = ends.iter().filter(|t| known(t).is_none()).cloned().collect();
    let read: HashMap<String, Value> = outputs::outputs_of(conn, p.id, &unread)?.into_iter().collect();
    let output_of = |t: &str| known(t).or_else(|| read.get(t));
    let fin = merge_outputs(p, &ends, output_of)?.to_value();
    let end = match &error {
        Some(error) => PipelineEnd::Failed { error, final_context: &fin },
        None => PipelineEnd::Completed { final_context: &fin },
    };
    faults.check(FaultPoint::FinishPipeline, FaultTiming::Before)?;
    if !pipelines::finish(conn, p.id, end, now)? {
        return Ok(None);
    }
    let record = crate::models::PipelineExecution {
        id: p.id,
        workflow_name: p.workflow_name.clone(),
        workflow_version: wf.version().to_owned(),
        status: if error.is_some() { PipelineStatus::Failed } else { PipelineStatus::Completed },
        context_id: None,
        final_context_id: None,
        error_details: error,
        started_at: None,
        completed_at: Some(now.as_datetime()),
        created_at: p.created_at,
        updated_at: now.as_datetime(),
    };
    Ok(Some(execution_result(record, &outcomes, Some(fin))?))
}
