//! `pipeline_executions`: one row per run of a workflow.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::{contexts, corrupt, serialize_writes, task_executions, time, write_transaction};
use crate::database::connection::MultiBackend;
use crate::database::schema::pipeline_executions as pe;
use crate::database::{dispatch, AnyConnection, Result, UniversalJson, UniversalTimestamp, UniversalUuid};
use crate::models::{ContextId, PipelineExecution, PipelineExecutionId, PipelineStatus};

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = pe)]
struct PipelineRow {
    id: UniversalUuid,
    workflow_name: String,
    workflow_version: String,
    status: String,
    context_id: Option<UniversalUuid>,
    final_context_id: Option<UniversalUuid>,
    error_details: Option<String>,
    started_at: Option<UniversalTimestamp>,
    completed_at: Option<UniversalTimestamp>,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

impl TryFrom<PipelineRow> for PipelineExecution {
    type Error = crate::database::Error;

    fn try_from(r: PipelineRow) -> Result<Self> {
        Ok(PipelineExecution {
            id: r.id.into(),
            status: r.status.parse().map_err(|e| corrupt("pipeline_executions", e))?,
            workflow_name: r.workflow_name,
            workflow_version: r.workflow_version,
            context_id: r.context_id.map(ContextId::from),
            final_context_id: r.final_context_id.map(ContextId::from),
            error_details: r.error_details,
            started_at: time(r.started_at),
            completed_at: time(r.completed_at),
            created_at: r.created_at.as_datetime(),
            updated_at: r.updated_at.as_datetime(),
        })
    }
}

/// A pipeline to create, with all of its tasks.
#[derive(Debug, Clone)]
pub struct NewPipeline {
    /// Workflow name.
    pub workflow_name: String,
    /// Workflow version (structural hash) the run starts with.
    pub workflow_version: String,
    /// The input context.
    pub input: Value,
    /// Every task of the workflow.
    pub tasks: Vec<task_executions::NewTask>,
}

/// Creates pipeline `id` (chosen by the caller, so a caller that lost the answer of an earlier
/// try can look it up), its input context and one row per task, in one transaction.
///
/// The pipeline starts `Pending`; tasks start `Ready` when [`task_executions::NewTask::ready`] is
/// set (no dependencies), `NotStarted` otherwise.
pub fn create(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    new: &NewPipeline,
    now: UniversalTimestamp,
) -> Result<PipelineExecutionId> {
    insert_pipeline(conn, id, new, now)?;
    // Thousands of new Ready rows at once leave the planner's statistics stale, and with stale
    // statistics PostgreSQL claims by sorting every Ready row (cost grows with the pipeline)
    // instead of reading the claim index (cost per claim flat). Refresh them now.
    if new.tasks.len() >= ANALYZE_AFTER_TASKS {
        dispatch!(conn, refresh_statistics())?;
    }
    Ok(id)
}

/// Pipelines with at least this many tasks refresh the planner's statistics when created.
const ANALYZE_AFTER_TASKS: usize = 1_000;

fn insert_pipeline(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    new: &NewPipeline,
    now: UniversalTimestamp,
) -> Result<()> {
    write_transaction(conn, |conn| {
        let context_id = contexts::insert(conn, &new.input, now)?;
        let row = PipelineRow {
            id: id.into(),
            workflow_name: new.workflow_name.clone(),
            workflow_version: new.workflow_version.clone(),
            status: PipelineStatus::Pending.as_str().to_owned(),
            context_id: Some(context_id.into()),
            final_context_id: None,
            error_details: None,
            started_at: None,
            completed_at: None,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(pe::table).values(&row).execute(conn)?;
        task_executions::insert_for_pipeline(conn, id, &new.tasks, now)
    })
}

pub use super::locks::pipelines as lock;

/// Up to `limit` active pipelines (Pending or Running) started with one of `versions` in which no
/// task is Ready or Running: nothing will move them on unless someone decides their remaining
/// tasks or ends them. The engine records an outcome and its consequences in one transaction, so
/// it never leaves a pipeline like this; recovery settles any it finds (left by a crash of an
/// older version, or by a hand edit).
pub fn quiescent(conn: &mut AnyConnection, versions: &[String], limit: u32) -> Result<Vec<PipelineExecutionId>> {
    use crate::database::schema::task_executions as te;
    if versions.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    const ACTIVE: [&str; 2] = [PipelineStatus::Pending.as_str(), PipelineStatus::Running.as_str()];
    const MOVING: [&str; 2] = [crate::models::TaskStatus::Ready.as_str(), crate::models::TaskStatus::Running.as_str()];
    let ids: Vec<UniversalUuid> = pe::table
        .filter(pe::status.eq_any(ACTIVE))
        .filter(pe::workflow_version.eq_any(versions))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            te::table.filter(te::pipeline_execution_id.eq(pe::id)).filter(te::status.eq_any(MOVING)),
        )))
        .order(pe::created_at.asc())
        .limit(i64::from(limit))
        .select(pe::id)
        .load(conn)?;
    Ok(ids.into_iter().map(PipelineExecutionId::from).collect())
}

/// Those of `versions` that some unfinished pipeline (Pending, Running or Paused) started with.
pub fn versions_in_use(conn: &mut AnyConnection, versions: &[String]) -> Result<Vec<String>> {
    if versions.is_empty() {
        return Ok(Vec::new());
    }
    const UNFINISHED: [&str; 3] =
        [PipelineStatus::Pending.as_str(), PipelineStatus::Running.as_str(), PipelineStatus::Paused.as_str()];
    Ok(pe::table
        .filter(pe::status.eq_any(UNFINISHED))
        .filter(pe::workflow_version.eq_any(versions))
        .select(pe::workflow_version)
        .distinct()
        .load(conn)?)
}

/// The pipeline with this id, if any.
pub fn get(conn: &mut AnyConnection, id: PipelineExecutionId) -> Result<Option<PipelineExecution>> {
    pe::table
        .find(UniversalUuid::from(id))
        .select(PipelineRow::as_select())
        .first(conn)
        .optional()?
        .map(PipelineExecution::try_from)
        .transpose()
}

/// The pipelines whose rows or tasks may have changed at or after `since`: the unfinished ones
/// (status index) and those that finished at or after it (`completed_at` index); or just
/// pipeline `only`. There is no index on `updated_at` (it would stop PostgreSQL's HOT updates of
/// the hottest rows): the unfinished set is small, the finished one bounded by time.
pub fn active_since(
    conn: &mut AnyConnection,
    since: DateTime<Utc>,
    only: Option<PipelineExecutionId>,
) -> Result<Vec<PipelineExecution>> {
    let mut query = pe::table.select(PipelineRow::as_select()).into_boxed::<MultiBackend>();
    query = match only {
        Some(id) => query.filter(pe::id.eq(UniversalUuid::from(id))),
        None => {
            let open: Vec<&str> = PipelineStatus::ALL.iter().filter(|s| !s.is_terminal()).map(|s| s.as_str()).collect();
            query.filter(pe::status.eq_any(open).or(pe::completed_at.ge(UniversalTimestamp::from(since))))
        }
    };
    let rows: Vec<PipelineRow> = query.load(conn)?;
    rows.into_iter().map(PipelineExecution::try_from).collect()
}

/// Those of `ids` whose pipelines are terminal (Completed, Failed or Cancelled), in one query.
pub fn terminal_among(conn: &mut AnyConnection, ids: &[PipelineExecutionId]) -> Result<Vec<PipelineExecutionId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let terminal: Vec<&str> = PipelineStatus::ALL.iter().filter(|s| s.is_terminal()).map(|s| s.as_str()).collect();
    let found: Vec<UniversalUuid> = pe::table
        .filter(pe::id.eq_any(ids.iter().map(|&id| UniversalUuid::from(id))))
        .filter(pe::status.eq_any(terminal))
        .select(pe::id)
        .load(conn)?;
    Ok(found.into_iter().map(PipelineExecutionId::from).collect())
}

/// The pipeline with this id and its input context, in one query.
pub fn get_with_input(conn: &mut AnyConnection, id: PipelineExecutionId) -> Result<Option<(PipelineExecution, Value)>> {
    use crate::database::schema::contexts as ctx;
    let input = ctx::table.filter(ctx::id.nullable().eq(pe::context_id)).select(ctx::value).single_value();
    let row: Option<(PipelineRow, Option<UniversalJson>)> =
        pe::table.find(UniversalUuid::from(id)).select((PipelineRow::as_select(), input)).first(conn).optional()?;
    row.map(|(p, input)| Ok((PipelineExecution::try_from(p)?, input.map_or(Value::Null, |v| v.0)))).transpose()
}

/// Which pipelines [`list`] returns: all filters are optional and combine with AND.
#[derive(Debug, Clone)]
pub struct PipelineFilter {
    /// Only this workflow.
    pub workflow_name: Option<String>,
    /// Only this status.
    pub status: Option<PipelineStatus>,
    /// Only pipelines created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only pipelines created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Keyset pagination: only pipelines after this one in the list's order (newest first), given
    /// by its creation time and id: the last row of the previous page. Unlike `offset`, a page
    /// costs the same however deep it is, and rows created meanwhile do not shift it.
    pub after: Option<(DateTime<Utc>, PipelineExecutionId)>,
    /// Page size (default 50).
    pub limit: u32,
    /// Rows to skip (default 0).
    pub offset: u32,
}

impl Default for PipelineFilter {
    fn default() -> Self {
        Self { workflow_name: None, status: None, since: None, until: None, after: None, limit: 50, offset: 0 }
    }
}

/// Pipelines matching `filter`, newest first (ties broken by id, so pages are stable).
pub fn list(conn: &mut AnyConnection, filter: &PipelineFilter) -> Result<Vec<PipelineExecution>> {
    let mut query = pe::table.select(PipelineRow::as_select()).into_boxed::<MultiBackend>();
    if let Some(name) = &filter.workflow_name {
        query = query.filter(pe::workflow_name.eq(name.clone()));
    }
    if let Some(status) = filter.status {
        query = query.filter(pe::status.eq(status.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(pe::created_at.ge(UniversalTimestamp::from(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(pe::created_at.lt(UniversalTimestamp::from(until)));
    }
    if let Some((at, id)) = filter.after {
        let (at, id) = (UniversalTimestamp::from(at), UniversalUuid::from(id));
        // `created_at <= at` first, so both planners range-scan the created_at index.
        query = query.filter(pe::created_at.le(at).and(pe::created_at.ne(at).or(pe::id.lt(id))));
    }
    let rows: Vec<PipelineRow> = query
        .order((pe::created_at.desc(), pe::id.desc()))
        .limit(i64::from(filter.limit))
        .offset(i64::from(filter.offset))
        .load(conn)?;
    rows.into_iter().map(PipelineExecution::try_from).collect()
}

/// Number of pipelines per status.
pub fn count_by_status(conn: &mut AnyConnection) -> Result<Vec<(PipelineStatus, i64)>> {
    let rows: Vec<(String, i64)> =
        pe::table.group_by(pe::status).select((pe::status, diesel::dsl::count_star())).load(conn)?;
    rows.into_iter().map(|(s, n)| Ok((s.parse().map_err(|e| corrupt("pipeline_executions", e))?, n))).collect()
}

#[derive(AsChangeset)]
#[diesel(table_name = pe)]
struct PipelineChange<'a> {
    status: &'a str,
    updated_at: UniversalTimestamp,
    started_at: Option<UniversalTimestamp>,
    completed_at: Option<UniversalTimestamp>,
    error_details: Option<&'a str>,
    final_context_id: Option<UniversalUuid>,
}

/// Moves the pipeline from `from` to `to` if (and only if) its status is still `from`.
///
/// Leaving `Pending` stamps `started_at`; reaching a terminal status stamps `completed_at`.
/// `error` is recorded when given. Returns whether this call made the change.
#[must_use = "the transition may not have happened"]
pub fn transition(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    from: PipelineStatus,
    to: PipelineStatus,
    error: Option<&str>,
    now: UniversalTimestamp,
) -> Result<bool> {
    let change = PipelineChange {
        status: to.as_str(),
        updated_at: now,
        started_at: (from == PipelineStatus::Pending && to != PipelineStatus::Pending).then_some(now),
        completed_at: to.is_terminal().then_some(now),
        error_details: error,
        final_context_id: None,
    };
    apply_if_status(conn, id, &[from], &change)
}

/// Moves the pipeline to `to` if its status is any of `from`, in one conditional statement (so
/// no concurrent transition can slip between two attempts). For pause and cancel, which apply
/// from several statuses; it stamps `completed_at` for a terminal `to`, never `started_at`.
#[must_use = "the transition may not have happened"]
pub fn transition_from_any(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    from: &[PipelineStatus],
    to: PipelineStatus,
    now: UniversalTimestamp,
) -> Result<bool> {
    let change = PipelineChange {
        status: to.as_str(),
        updated_at: now,
        started_at: None,
        completed_at: to.is_terminal().then_some(now),
        error_details: None,
        final_context_id: None,
    };
    apply_if_status(conn, id, from, &change)
}

fn apply_if_status(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    from: &[PipelineStatus],
    change: &PipelineChange<'_>,
) -> Result<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let n = serialize_writes(conn, |conn| {
        diesel::update(pe::table.find(UniversalUuid::from(id)).filter(pe::status.eq_any(from)))
            .set(change)
            .execute(conn)
    })?;
    Ok(n == 1)
}

/// Cancels a pipeline that is Pending, Running or Paused, and cancels its tasks that have not
/// started, in one transaction. Tasks already running finish, but nothing new starts. Returns
/// whether this call cancelled it (false when it had already finished or was cancelled).
#[must_use = "the pipeline may already have finished"]
pub fn cancel(conn: &mut AnyConnection, id: PipelineExecutionId, now: UniversalTimestamp) -> Result<bool> {
    write_transaction(conn, |conn| {
        // One conditional statement: no concurrent Pending → Running can slip in between.
        let cancellable = [PipelineStatus::Pending, PipelineStatus::Running, PipelineStatus::Paused];
        let won = transition_from_any(conn, id, &cancellable, PipelineStatus::Cancelled, now)?;
        if won {
            super::task_executions::cancel_unstarted(conn, id, now)?;
        }
        Ok(won)
    })
}

/// How a pipeline ends: [`finish`] stores it.
#[derive(Debug, Clone, Copy)]
pub enum PipelineEnd<'a> {
    /// Every task ended without failing; the final context is stored with the status.
    Completed {
        /// The final context.
        final_context: &'a Value,
    },
    /// A task failed.
    Failed {
        /// Why, recorded as `error_details`.
        error: &'a str,
        /// The context of the last task that completed (the input if none did), stored as the
        /// final context as upstream Cloacina does.
        final_context: &'a Value,
    },
}

/// Ends a `Pending` or `Running` pipeline as `end` says, with its final context for a completed
/// one, atomically; returns whether this call ended it (false: it had already ended, or was
/// paused or cancelled). A pipeline that ends without ever running (every root skipped) gets
/// `started_at` too.
///
/// PostgreSQL does a completion in one statement (the conditional update feeds the context
/// insert); SQLite runs the same writes in one `BEGIN IMMEDIATE` transaction.
#[must_use = "the pipeline may already have ended"]
pub fn finish(
    conn: &mut AnyConnection,
    id: PipelineExecutionId,
    end: PipelineEnd<'_>,
    now: UniversalTimestamp,
) -> Result<bool> {
    const ENDABLE: [&str; 2] = [PipelineStatus::Pending.as_str(), PipelineStatus::Running.as_str()];
    let (error, final_context) = match end {
        PipelineEnd::Completed { final_context } => {
            // One transaction (the caller's when there is one): SQLite's writes commit together.
            return write_transaction(conn, |c| {
                dispatch!(c, finish_completed(UniversalUuid::from(id), final_context, now))
            });
        }
        PipelineEnd::Failed { error, final_context } => (error, final_context),
    };
    let failed = diesel::update(pe::table.find(UniversalUuid::from(id)).filter(pe::status.eq_any(ENDABLE))).set((
        pe::status.eq(PipelineStatus::Failed.as_str()),
        pe::started_at.eq(crate::database::universal_types::coalesce(pe::started_at, Some(now))),
        pe::completed_at.eq(now),
        pe::updated_at.eq(now),
        pe::error_details.eq(error),
    ));
    if serialize_writes(conn, |conn| failed.execute(conn))? != 1 {
        return Ok(false);
    }
    // Failures are rare: the final context goes in two more statements, in the caller's
    // transaction, rather than a backend-specific single statement as for completions.
    let context = super::contexts::insert(conn, final_context, now)?;
    let link = diesel::update(pe::table.find(UniversalUuid::from(id)))
        .set(pe::final_context_id.eq(Some(UniversalUuid::from(context))));
    serialize_writes(conn, |conn| link.execute(conn))?;
    Ok(true)
}

/// Which finished runs [`prune_batch`] deletes.
#[derive(Debug, Clone)]
pub struct PruneFilter {
    /// Only runs that ended before this time.
    pub ended_before: DateTime<Utc>,
    /// Only runs in these statuses (each terminal; empty: every terminal status).
    pub statuses: Vec<PipelineStatus>,
}

impl PruneFilter {
    fn statuses(&self) -> Vec<&'static str> {
        let all = PipelineStatus::ALL.iter().copied().filter(|s| s.is_terminal());
        all.filter(|s| self.statuses.is_empty() || self.statuses.contains(s)).map(PipelineStatus::as_str).collect()
    }
}

/// How many finished runs match `filter` (what a prune would delete).
pub fn count_prunable(conn: &mut AnyConnection, filter: &PruneFilter) -> Result<i64> {
    Ok(pe::table
        .filter(pe::status.eq_any(filter.statuses()))
        .filter(pe::completed_at.lt(UniversalTimestamp::from(filter.ended_before)))
        .count()
        .get_result(conn)?)
}

/// Deletes up to `limit` finished runs matching `filter` (oldest first), with their tasks,
/// outputs, recovery events and context documents, in one short transaction; cron and trigger
/// history keep their rows with the run's id cleared. Returns how many runs it deleted (0: done).
/// Only terminal runs without a Running task are touched, and nothing the engine does locks such
/// a run's rows, so a batch never waits on a runner and a runner never waits long on a batch.
pub fn prune_batch(conn: &mut AnyConnection, filter: &PruneFilter, limit: u32) -> Result<usize> {
    use crate::database::schema::{task_execution_metadata as tm, task_executions as te};
    write_transaction(conn, |conn| {
        let ids: Vec<UniversalUuid> = pe::table
            .filter(pe::status.eq_any(filter.statuses()))
            .filter(pe::completed_at.lt(UniversalTimestamp::from(filter.ended_before)))
            .order((pe::completed_at.asc(), pe::id.asc()))
            .select(pe::id)
            .limit(i64::from(limit))
            .load(conn)?;
        // A cancelled run's task may still be running on a runner (cancel lets it finish): such a
        // run waits for a later prune, so the runner's outcome still finds its row.
        let busy: Vec<UniversalUuid> = te::table
            .filter(te::pipeline_execution_id.eq_any(&ids))
            .filter(te::status.eq(crate::models::TaskStatus::Running.as_str()))
            .select(te::pipeline_execution_id)
            .load(conn)?;
        let ids: Vec<UniversalUuid> = ids.into_iter().filter(|id| !busy.iter().any(|b| b.0 == id.0)).collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let own: Vec<(Option<UniversalUuid>, Option<UniversalUuid>)> =
            pe::table.filter(pe::id.eq_any(&ids)).select((pe::context_id, pe::final_context_id)).load(conn)?;
        let outputs: Vec<Option<UniversalUuid>> =
            tm::table.filter(tm::pipeline_execution_id.eq_any(&ids)).select(tm::context_id).load(conn)?;
        let mut documents: Vec<UniversalUuid> =
            own.into_iter().flat_map(|(a, b)| [a, b]).chain(outputs).flatten().collect();
        documents.sort_by_key(|u| u.0);
        documents.dedup_by_key(|u| u.0);
        // Children go by ON DELETE CASCADE (tasks, outputs, recovery events) or SET NULL (cron and
        // trigger history); the context documents are referenced, not owned, by key.
        let deleted = diesel::delete(pe::table.filter(pe::id.eq_any(&ids))).execute(conn)?;
        for chunk in documents.chunks(super::LIST_CHUNK) {
            contexts::delete(conn, chunk)?;
        }
        Ok(deleted)
    })
}
