//! `task_executions`: one row per task of a pipeline, with its status, attempts, claim and lease.
//!
//! Claiming, lease renewal, completion and recovery are all fenced: a change applies only while
//! the row is in the expected status and, for a claimed task, still claimed by the caller.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::Value;

use super::{
    corrupt, in_chunks, int, locks, recovery_events, serialize_writes, task_attempts, time, uint, write_transaction,
    INSERT_CHUNK,
};
use crate::database::schema::{pipeline_executions as pe, task_executions as te};
use crate::database::{dispatch, load_skip_locked, on_inner};
use crate::database::{AnyConnection, JsonText, Result, UniversalTimestamp, UniversalUuid};
use crate::models::{
    AttemptOutcome, PipelineExecutionId, PipelineStatus, RecoveredTask, TaskExecution, TaskExecutionId, TaskStatus,
};
use crate::workflow::TaskSpec;

#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = te)]
struct TaskRow {
    id: UniversalUuid,
    pipeline_execution_id: UniversalUuid,
    task_name: String,
    status: String,
    attempt: i32,
    max_attempts: i32,
    retry_at: Option<UniversalTimestamp>,
    claimed_by: Option<String>,
    lease_expires_at: Option<UniversalTimestamp>,
    started_at: Option<UniversalTimestamp>,
    completed_at: Option<UniversalTimestamp>,
    error_details: Option<String>,
    trigger_rules: JsonText,
    task_configuration: JsonText,
    created_at: UniversalTimestamp,
    updated_at: UniversalTimestamp,
}

impl TryFrom<TaskRow> for TaskExecution {
    type Error = crate::database::Error;

    fn try_from(r: TaskRow) -> Result<Self> {
        Ok(TaskExecution {
            id: r.id.into(),
            pipeline_execution_id: r.pipeline_execution_id.into(),
            status: r.status.parse().map_err(|e| corrupt("task_executions", e))?,
            task_name: r.task_name,
            attempt: uint(r.attempt),
            max_attempts: uint(r.max_attempts),
            retry_at: time(r.retry_at),
            claimed_by: r.claimed_by,
            lease_expires_at: time(r.lease_expires_at),
            started_at: time(r.started_at),
            completed_at: time(r.completed_at),
            error_details: r.error_details,
            trigger_rules: r.trigger_rules.0,
            task_configuration: r.task_configuration.0,
            created_at: r.created_at.as_datetime(),
            updated_at: r.updated_at.as_datetime(),
        })
    }
}

fn to_records(rows: Vec<TaskRow>) -> Result<Vec<TaskExecution>> {
    rows.into_iter().map(TaskExecution::try_from).collect()
}

fn uuids(ids: &[TaskExecutionId]) -> Vec<UniversalUuid> {
    ids.iter().map(|&id| id.into()).collect()
}

/// A task row to create with its pipeline.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Task id within the workflow.
    pub name: String,
    /// Attempts allowed in all (at least 1).
    pub max_attempts: u32,
    /// True when the task has no dependencies and can be claimed at once.
    pub ready: bool,
    /// Trigger rules, serialised by the engine (JSON text).
    pub trigger_rules: String,
    /// Task configuration (retry policy, timeout), serialised by the engine (JSON text).
    pub task_configuration: String,
}

impl NewTask {
    /// The row of `spec` in a new pipeline, `ready` when it can be claimed at once: its trigger
    /// rule and configuration (retry policy, timeout) serialised as the engine reads them back.
    pub fn of(spec: &TaskSpec, ready: bool) -> Self {
        NewTask {
            name: spec.id.clone(),
            max_attempts: spec.retry.max_attempts,
            ready,
            trigger_rules: serde_json::to_string(&spec.trigger_rule).unwrap_or_else(|_| "null".to_owned()),
            task_configuration: serde_json::json!({ "retry": spec.retry, "timeout": spec.timeout }).to_string(),
        }
    }
}

/// Inserts the task rows of a new pipeline in multi-row batches. Called by
/// `pipeline_executions::create` inside its transaction.
pub(crate) fn insert_for_pipeline(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    tasks: &[NewTask],
    now: UniversalTimestamp,
) -> Result<()> {
    // Rows are built a chunk at a time, so a huge pipeline never holds a second copy of itself.
    for chunk in tasks.chunks(INSERT_CHUNK) {
        let rows: Vec<TaskRow> = chunk
            .iter()
            .map(|t| TaskRow {
                id: UniversalUuid::new_v7(),
                pipeline_execution_id: pipeline.into(),
                task_name: t.name.clone(),
                status: if t.ready { TaskStatus::Ready } else { TaskStatus::NotStarted }.as_str().to_owned(),
                attempt: 1,
                max_attempts: int(t.max_attempts.max(1)),
                retry_at: None,
                claimed_by: None,
                lease_expires_at: None,
                started_at: None,
                completed_at: None,
                error_details: None,
                trigger_rules: JsonText(t.trigger_rules.clone()),
                task_configuration: JsonText(t.task_configuration.clone()),
                created_at: now,
                updated_at: now,
            })
            .collect();
        // Rows as tuples of column values: Diesel writes a slice of `Insertable` structs as one
        // INSERT per row on SQLite (any field could stand for DEFAULT), tuples as one statement.
        // Multi-row INSERT does not compile through `MultiBackend`; the same statement per backend.
        let values: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    te::id.eq(r.id),
                    te::pipeline_execution_id.eq(r.pipeline_execution_id),
                    te::task_name.eq(r.task_name.as_str()),
                    te::status.eq(r.status.as_str()),
                    te::attempt.eq(r.attempt),
                    te::max_attempts.eq(r.max_attempts),
                    te::retry_at.eq(r.retry_at),
                    te::claimed_by.eq(r.claimed_by.as_deref()),
                    te::lease_expires_at.eq(r.lease_expires_at),
                    te::started_at.eq(r.started_at),
                    te::completed_at.eq(r.completed_at),
                    te::error_details.eq(r.error_details.as_deref()),
                    te::trigger_rules.eq(&r.trigger_rules),
                    te::task_configuration.eq(&r.task_configuration),
                    te::created_at.eq(r.created_at),
                    te::updated_at.eq(r.updated_at),
                )
            })
            .collect();
        on_inner!(conn, c => diesel::insert_into(te::table).values(values).execute(c))?;
    }
    Ok(())
}

/// The task with this id, if any.
pub fn get(conn: &mut AnyConnection, id: TaskExecutionId) -> Result<Option<TaskExecution>> {
    te::table
        .find(UniversalUuid::from(id))
        .select(TaskRow::as_select())
        .first(conn)
        .optional()?
        .map(TaskExecution::try_from)
        .transpose()
}

/// Every task of a pipeline, in creation order.
pub fn list_for_pipeline(conn: &mut AnyConnection, pipeline: PipelineExecutionId) -> Result<Vec<TaskExecution>> {
    let rows = te::table
        .filter(te::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .order((te::created_at.asc(), te::task_name.asc()))
        .select(TaskRow::as_select())
        .load(conn)?;
    to_records(rows)
}

/// The tasks of `pipelines` whose `updated_at` is at or after `since` (by the pipeline index).
pub fn changed_since(
    conn: &mut AnyConnection,
    pipelines: &[PipelineExecutionId],
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<TaskExecution>> {
    if pipelines.is_empty() {
        return Ok(Vec::new());
    }
    let rows = te::table
        .filter(te::pipeline_execution_id.eq_any(pipelines.iter().map(|&p| UniversalUuid::from(p))))
        .filter(te::updated_at.ge(UniversalTimestamp::from(since)))
        .select(TaskRow::as_select())
        .load(conn)?;
    to_records(rows)
}

/// How one task of a pipeline ended (or stands): what a pipeline's result reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// Task id within the workflow.
    pub task_name: String,
    /// Current status.
    pub status: TaskStatus,
    /// Current attempt number (1-based).
    pub attempt: u32,
    /// When the last attempt started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it reached a terminal status.
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The last error.
    pub error_details: Option<String>,
}

/// Every task of a pipeline, in creation order (outputs are read apart, by name:
/// [`super::task_execution_metadata::outputs_of`]).
pub fn outcomes(conn: &mut AnyConnection, pipeline: PipelineExecutionId) -> Result<Vec<TaskOutcome>> {
    type Row = (String, String, i32, Option<UniversalTimestamp>, Option<UniversalTimestamp>, Option<String>);
    let rows: Vec<Row> = te::table
        .filter(te::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .order((te::created_at.asc(), te::task_name.asc()))
        .select((te::task_name, te::status, te::attempt, te::started_at, te::completed_at, te::error_details))
        .load(conn)?;
    rows.into_iter()
        .map(|(task_name, status, attempt, started_at, completed_at, error_details)| {
            Ok(TaskOutcome {
                task_name,
                status: status.parse().map_err(|e| corrupt("task_executions", e))?,
                attempt: uint(attempt),
                started_at: time(started_at),
                completed_at: time(completed_at),
                error_details,
            })
        })
        .collect()
}

/// Claims up to `limit` claimable tasks for `runner`, oldest first, with a lease of `lease`.
///
/// Claimable: `Ready`, `retry_at` unset or not after `now`, and the pipeline active (not paused)
/// and started with one of `versions` (the workflow versions the runner has). Each claimed row becomes `Running`
/// with `claimed_by = runner`. Two runners never claim the same row: on PostgreSQL the candidate
/// rows are locked with `FOR UPDATE SKIP LOCKED` (concurrent claimers take different rows), on
/// SQLite the transaction holds the write lock from its start (`BEGIN IMMEDIATE`); the update is
/// conditional on `status = 'Ready'` either way.
pub fn claim_ready(
    conn: &mut AnyConnection,
    runner: &str,
    versions: &[String],
    limit: u32,
    lease: Duration,
    now: UniversalTimestamp,
) -> Result<Vec<TaskExecution>> {
    if limit == 0 || versions.is_empty() {
        return Ok(Vec::new());
    }
    const ACTIVE: [&str; 2] = [PipelineStatus::Pending.as_str(), PipelineStatus::Running.as_str()];
    write_transaction(conn, |conn| {
        // The pipeline test is a scalar subquery on the pipeline's primary key, evaluated per
        // candidate row. Neither planner can turn it into a join, so both walk the Ready index in
        // claim order and stop after `limit` rows, whatever the number of active pipelines and
        // whatever the statistics say. (As a correlated EXISTS, PostgreSQL without statistics on
        // `pipeline_executions` chose a hash join, a sequential scan and a sort of every Ready
        // row: 6.4 ms per claim with 10,000 Ready tasks, against 0.13 ms for the index walk. As
        // `IN (active pipelines)`, SQLite sorted every Ready row of those pipelines per claim.)
        macro_rules! candidates {
            () => {
                te::table
                    .filter(te::status.eq(TaskStatus::Ready.as_str()))
                    .filter(te::retry_at.is_null().or(te::retry_at.le(now)))
                    .filter(
                        pe::table
                            .filter(pe::id.eq(te::pipeline_execution_id))
                            .filter(pe::status.eq_any(ACTIVE))
                            .select(pe::workflow_version)
                            .single_value()
                            .assume_not_null()
                            .eq_any(versions),
                    )
                    .order((te::created_at.asc(), te::id.asc()))
                    .limit(i64::from(limit))
                    .select(te::id)
            };
        }
        // Row locks that skip rows other claimers hold (PostgreSQL; SQLite has one writer).
        let ids: Vec<UniversalUuid> = load_skip_locked!(conn, candidates!())?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<TaskRow> =
            diesel::update(te::table.filter(te::id.eq_any(ids)).filter(te::status.eq(TaskStatus::Ready.as_str())))
                .set(claim_set(runner, lease, now))
                .returning(te::all_columns)
                .get_results(conn)?;
        to_records(rows)
    })
}

/// What [`renew_leases`] did with each listed task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Leases extended: the runner still holds these claims.
    pub renewed: Vec<TaskExecutionId>,
    /// Rows another transaction held at that moment (PostgreSQL only): not renewed, not known to
    /// be lost. Another claimer's scan can hold a row for the length of its statement; try again.
    pub busy: Vec<TaskExecutionId>,
}

impl Renewal {
    /// The listed claims that ended: neither renewed nor busy (their outcome was recorded, or
    /// recovery gave the task to someone else).
    pub fn ended<'a>(&'a self, listed: &'a [TaskExecutionId]) -> impl Iterator<Item = TaskExecutionId> + 'a {
        listed.iter().copied().filter(|id| !self.renewed.contains(id) && !self.busy.contains(id))
    }
}

/// Extends the lease of every listed task `runner` still holds to `until`.
///
/// On PostgreSQL it skips rows another transaction holds instead of waiting for them
/// (`lock_free`), so it can never be part of a deadlock; those come back as
/// [`Renewal::busy`]. Only the completer and recovery hold a claimed task's row for long, and both
/// end the claim; other claimers' scans hold rows for the length of a statement.
pub fn renew_leases(
    conn: &mut AnyConnection,
    runner: &str,
    ids: &[TaskExecutionId],
    until: UniversalTimestamp,
    now: UniversalTimestamp,
) -> Result<Renewal> {
    if ids.is_empty() {
        return Ok(Renewal::default());
    }
    let (free, renewed): (Vec<UniversalUuid>, Vec<UniversalUuid>) = write_transaction(conn, |conn| {
        let free = lock_free(conn, ids)?;
        let renewed = diesel::update(
            te::table
                .filter(te::id.eq_any(&free))
                .filter(te::status.eq(TaskStatus::Running.as_str()))
                .filter(te::claimed_by.eq(runner)),
        )
        .set((te::lease_expires_at.eq(until), te::updated_at.eq(now)))
        .returning(te::id)
        .get_results(conn)?;
        Ok::<_, crate::database::Error>((free, renewed))
    })?;
    Ok(Renewal {
        renewed: renewed.into_iter().map(TaskExecutionId::from).collect(),
        busy: ids.iter().copied().filter(|id| !free.contains(&UniversalUuid::from(*id))).collect(),
    })
}

/// Locks, for the rest of the caller's transaction, those of the listed task rows that no other
/// transaction holds, in ascending id order, and returns them: it never waits.
///
/// The engine's lock order (ARCHITECTURE.md): a transaction that may wait for task rows holds
/// their pipelines' locks first ([`locks::pipelines`]); one that locks task rows without
/// them (the heartbeat here, the claim) skips locked rows and so never waits. PostgreSQL:
/// `SELECT … ORDER BY id FOR NO KEY UPDATE SKIP LOCKED`. SQLite: every id, at once, because the
/// caller's `BEGIN IMMEDIATE` already excludes every other writer.
fn lock_free(conn: &mut AnyConnection, ids: &[TaskExecutionId]) -> Result<Vec<UniversalUuid>> {
    let mut sorted = uuids(ids);
    sorted.sort_unstable();
    sorted.dedup();
    Ok(dispatch!(conn, lock_free_tasks(&sorted))?)
}

/// The tasks `runner` claimed with the claim stamped `at` that are still Running under its name:
/// what a claim statement took when its answer was lost (the connection dropped after the commit).
pub fn claimed_at(conn: &mut AnyConnection, runner: &str, at: UniversalTimestamp) -> Result<Vec<TaskExecution>> {
    let rows = te::table
        .filter(te::status.eq(TaskStatus::Running.as_str()))
        .filter(te::claimed_by.eq(runner))
        .filter(te::started_at.eq(at))
        .select(TaskRow::as_select())
        .load(conn)?;
    to_records(rows)
}

/// The fence every change of a claimed task goes through: this row, still Running, still ours.
macro_rules! claimed {
    ($id:expr, $runner:expr) => {
        te::table
            .find(UniversalUuid::from($id))
            .filter(te::status.eq(TaskStatus::Running.as_str()))
            .filter(te::claimed_by.eq($runner))
    };
}

/// Records success: the task becomes `Completed`, and its output context and metadata row are
/// stored, all atomically and only if `runner` still holds the claim.
/// Returns false (and writes nothing) when the claim was lost. [`complete_all`] for one task.
#[must_use = "the claim may have been lost"]
pub fn complete(
    conn: &mut AnyConnection,
    id: TaskExecutionId,
    runner: &str,
    output: &Value,
    now: UniversalTimestamp,
) -> Result<bool> {
    Ok(complete_all(conn, runner, &[(id, output.clone())], now)? == [id])
}

/// What a claim writes: Running under `runner`, leased until `stamp + lease`, started at `stamp`
/// (the claim stamp a lost answer is found by), no retry time.
#[allow(clippy::type_complexity)]
fn claim_set(
    runner: &str,
    lease: std::time::Duration,
    stamp: UniversalTimestamp,
) -> (
    diesel::dsl::Eq<te::status, &'static str>,
    diesel::dsl::Eq<te::claimed_by, &str>,
    diesel::dsl::Eq<te::lease_expires_at, UniversalTimestamp>,
    diesel::dsl::Eq<te::started_at, UniversalTimestamp>,
    diesel::dsl::Eq<te::retry_at, Option<UniversalTimestamp>>,
    diesel::dsl::Eq<te::updated_at, UniversalTimestamp>,
) {
    (
        te::status.eq(TaskStatus::Running.as_str()),
        te::claimed_by.eq(runner),
        te::lease_expires_at.eq(stamp.plus(lease)),
        te::started_at.eq(stamp),
        te::retry_at.eq(None),
        te::updated_at.eq(stamp),
    )
}

/// Records success for several tasks at once, each exactly as [`complete`] does and each fenced
/// on its own claim; returns the ids recorded (a task whose claim was lost is left untouched).
///
/// The hottest write of the engine. PostgreSQL does the whole batch in one statement: a
/// data-modifying CTE in which the fenced update (over the unnested inputs) feeds both inserts.
/// SQLite has no data-modifying CTEs and does the same writes as three statements (one update,
/// two multi-row inserts) in one `BEGIN IMMEDIATE` transaction.
pub fn complete_all(
    conn: &mut AnyConnection,
    runner: &str,
    outputs: &[(TaskExecutionId, Value)],
    now: UniversalTimestamp,
) -> Result<Vec<TaskExecutionId>> {
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let outputs: Vec<(UniversalUuid, Value)> = outputs.iter().map(|(id, out)| ((*id).into(), out.clone())).collect();
    // One transaction (the caller's when there is one): SQLite's three statements commit together.
    let won = write_transaction(conn, |c| dispatch!(c, complete_all(runner, &outputs, now)))?;
    Ok(won.into_iter().map(TaskExecutionId::from).collect())
}

/// Records a final failure (`Running` → `Failed`), fenced on the claim, with the attempt in
/// `task_attempts`.
#[must_use = "the claim may have been lost"]
pub fn fail(
    conn: &mut AnyConnection,
    id: TaskExecutionId,
    runner: &str,
    error: &str,
    now: UniversalTimestamp,
) -> Result<bool> {
    write_transaction(conn, |conn| {
        let ended: Option<EndedRow> = diesel::update(claimed!(id, runner))
            .set((
                te::status.eq(TaskStatus::Failed.as_str()),
                te::completed_at.eq(now),
                te::lease_expires_at.eq(None::<UniversalTimestamp>),
                te::error_details.eq(error),
                te::updated_at.eq(now),
            ))
            .returning(ENDED_COLUMNS)
            .get_result(conn)
            .optional()?;
        let how = Ending { outcome: AttemptOutcome::Failed, bumped: 0, runner, error };
        record_ended(conn, id, ended, how, now)
    })
}

/// Schedules another attempt: `Running` → `Ready` with `attempt + 1` and `retry_at`, fenced on the
/// claim, with the failed attempt in `task_attempts`. The waiting retry is an ordinary row, so it
/// survives a restart of every runner.
#[must_use = "the claim may have been lost"]
pub fn schedule_retry(
    conn: &mut AnyConnection,
    id: TaskExecutionId,
    runner: &str,
    error: &str,
    retry_at: UniversalTimestamp,
    now: UniversalTimestamp,
) -> Result<bool> {
    write_transaction(conn, |conn| {
        let ended: Option<EndedRow> = diesel::update(claimed!(id, runner))
            .set((
                te::status.eq(TaskStatus::Ready.as_str()),
                te::attempt.eq(te::attempt + 1),
                te::retry_at.eq(retry_at),
                te::claimed_by.eq(None::<String>),
                te::lease_expires_at.eq(None::<UniversalTimestamp>),
                te::error_details.eq(error),
                te::updated_at.eq(now),
            ))
            .returning(ENDED_COLUMNS)
            .get_result(conn)
            .optional()?;
        let how = Ending { outcome: AttemptOutcome::Retried, bumped: 1, runner, error };
        record_ended(conn, id, ended, how, now)
    })
}

/// What a fenced update that ends an attempt returns: the pipeline, the attempt number after the
/// update, and when the attempt started.
type EndedRow = (UniversalUuid, i32, Option<UniversalTimestamp>);
const ENDED_COLUMNS: (te::pipeline_execution_id, te::attempt, te::started_at) =
    (te::pipeline_execution_id, te::attempt, te::started_at);

/// How a claimed attempt ended: what to store, and how much the fenced update raised the attempt
/// number.
struct Ending<'a> {
    outcome: AttemptOutcome,
    bumped: i32,
    runner: &'a str,
    error: &'a str,
}

/// Stores the attempt a fenced update ended (`ended`: what the update returned, `None` when the
/// claim was lost); returns whether there was one.
fn record_ended(
    conn: &mut AnyConnection,
    id: TaskExecutionId,
    ended: Option<EndedRow>,
    how: Ending<'_>,
    now: UniversalTimestamp,
) -> Result<bool> {
    let Some((pipeline, attempt, started_at)) = ended else { return Ok(false) };
    let ended = task_attempts::Ended {
        task: id.into(),
        pipeline,
        attempt: attempt - how.bumped,
        outcome: how.outcome,
        runner: Some(how.runner),
        error: how.error,
        started_at,
    };
    task_attempts::record(conn, &ended, now)?;
    Ok(true)
}

/// Gives back a claimed task whose attempt was cut short (a graceful shutdown cancelled it at its
/// deadline, or the runner could not prepare it): `Running` → `Ready`, fenced on the claim, with a
/// `recovery_events` row saying why. The attempt number grows, so every execution of a task has
/// its own number, but the cut-short attempt is not charged: `max_attempts` grows with it.
/// Returns false (and writes nothing) when the claim was lost.
#[must_use = "the claim may have been lost"]
pub fn release(
    conn: &mut AnyConnection,
    id: TaskExecutionId,
    runner: &str,
    reason: &str,
    now: UniversalTimestamp,
) -> Result<bool> {
    write_transaction(conn, |conn| {
        let released: Option<EndedRow> = diesel::update(claimed!(id, runner))
            .set((
                te::status.eq(TaskStatus::Ready.as_str()),
                te::attempt.eq(te::attempt + 1),
                te::max_attempts.eq(te::max_attempts + 1),
                te::claimed_by.eq(None::<String>),
                te::lease_expires_at.eq(None::<UniversalTimestamp>),
                te::error_details.eq(reason),
                te::updated_at.eq(now),
            ))
            .returning(ENDED_COLUMNS)
            .get_result(conn)
            .optional()?;
        let Some((pipeline, attempt, _)) = released else { return Ok(false) };
        let task = RecoveredTask {
            task_execution_id: id,
            pipeline_execution_id: pipeline.into(),
            previous_claimant: Some(runner.to_owned()),
            new_status: TaskStatus::Ready,
            attempt: uint(attempt),
        };
        recovery_events::insert_for_task(conn, recovery_events::TASK_RELEASED, &task, reason, now)?;
        let how = Ending { outcome: AttemptOutcome::Released, bumped: 1, runner, error: reason };
        record_ended(conn, id, released, how, now)
    })
}

/// Moves the named tasks of a pipeline that are still `NotStarted` to `to` (a terminal status also
/// sets the completion time); returns the names this call moved. Rows already moved by someone
/// else are left alone.
pub fn resolve_not_started(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    names: &[String],
    to: TaskStatus,
    now: UniversalTimestamp,
) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    serialize_writes(conn, |conn| {
        in_chunks(names, |names| {
            Ok(diesel::update(
                te::table
                    .filter(te::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
                    .filter(te::task_name.eq_any(names))
                    .filter(te::status.eq(TaskStatus::NotStarted.as_str())),
            )
            .set((
                te::status.eq(to.as_str()),
                te::completed_at.eq(to.is_terminal().then_some(now)),
                te::updated_at.eq(now),
            ))
            .returning(te::task_name)
            .get_results(conn)?)
        })
    })
}

/// Claims the named tasks of a pipeline that are still `NotStarted` for `runner` directly, as the
/// scheduler decides they may run: `Running` under a lease of `lease`, started at `stamp`,
/// without passing through `Ready`. Only while the pipeline is active (Pending or Running); the
/// tasks it did not take are left as they were. Returns the claimed tasks.
pub fn claim_not_started(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    names: &[String],
    runner: &str,
    lease: Duration,
    stamp: UniversalTimestamp,
) -> Result<Vec<TaskExecution>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    const ACTIVE: [&str; 2] = [PipelineStatus::Pending.as_str(), PipelineStatus::Running.as_str()];
    let pipeline = UniversalUuid::from(pipeline);
    let rows: Vec<TaskRow> = serialize_writes(conn, |conn| {
        in_chunks(names, |names| {
            Ok(diesel::update(
                te::table
                    .filter(te::pipeline_execution_id.eq(pipeline))
                    .filter(te::task_name.eq_any(names))
                    .filter(te::status.eq(TaskStatus::NotStarted.as_str()))
                    .filter(diesel::dsl::exists(
                        pe::table.filter(pe::id.eq(pipeline)).filter(pe::status.eq_any(ACTIVE)),
                    )),
            )
            .set(claim_set(runner, lease, stamp))
            .returning(te::all_columns)
            .get_results(conn)?)
        })
    })?;
    to_records(rows)
}

/// Cancels every task of a pipeline that has not started (`NotStarted` or `Ready`); returns how many.
pub fn cancel_unstarted(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    now: UniversalTimestamp,
) -> Result<usize> {
    let n = serialize_writes(conn, |conn| {
        diesel::update(
            te::table
                .filter(te::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
                .filter(te::status.eq_any([TaskStatus::NotStarted.as_str(), TaskStatus::Ready.as_str()])),
        )
        .set((te::status.eq(TaskStatus::Cancelled.as_str()), te::completed_at.eq(now), te::updated_at.eq(now)))
        .execute(conn)
    })?;
    Ok(n)
}

/// Finds up to `limit` `Running` tasks of pipelines started with one of `versions` whose lease
/// expired before `now`, and resets each to `Ready` (attempt + 1) or, when its attempts are spent,
/// to `Failed`, writing one `recovery_events` row per decision, in one transaction.
///
/// Each reset is conditional on the row still being `Running`, claimed by the same runner, with
/// its lease still expired, so a runner that renews in time keeps its task. The candidates'
/// pipelines are locked first (the engine's lock order), so the caller can go on to decide what
/// follows a failed task in the same transaction. Only `versions` are handled: a
/// task of another version needs a runner that has it, to decide what follows.
pub fn expire_leases(
    conn: &mut AnyConnection,
    versions: &[String],
    now: UniversalTimestamp,
    limit: u32,
) -> Result<Vec<RecoveredTask>> {
    if versions.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    write_transaction(conn, |conn| {
        type Candidate = (UniversalUuid, UniversalUuid, Option<String>, i32, i32, Option<UniversalTimestamp>);
        let candidates: Vec<Candidate> = te::table
            .filter(te::status.eq(TaskStatus::Running.as_str()))
            .filter(te::lease_expires_at.lt(now))
            .filter(diesel::dsl::exists(
                pe::table.filter(pe::id.eq(te::pipeline_execution_id)).filter(pe::workflow_version.eq_any(versions)),
            ))
            .order(te::lease_expires_at.asc())
            .limit(i64::from(limit))
            .select((te::id, te::pipeline_execution_id, te::claimed_by, te::attempt, te::max_attempts, te::started_at))
            .load(conn)?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let pipelines: Vec<PipelineExecutionId> = candidates.iter().map(|c| c.1.into()).collect();
        locks::pipelines(conn, &pipelines)?;
        let mut recovered = Vec::with_capacity(candidates.len());
        for (id, pipeline, claimant, attempt, max_attempts, started_at) in candidates {
            let retry = attempt < max_attempts;
            let (new_status, new_attempt) =
                if retry { (TaskStatus::Ready, attempt + 1) } else { (TaskStatus::Failed, attempt) };
            let message = format!(
                "lease expired (runner {} stopped renewing) during attempt {attempt} of {max_attempts}",
                claimant.as_deref().unwrap_or("?")
            );
            let fence = te::table
                .find(id)
                .filter(te::status.eq(TaskStatus::Running.as_str()))
                .filter(te::claimed_by.eq(claimant.clone()))
                .filter(te::lease_expires_at.lt(now));
            let n = diesel::update(fence)
                .set((
                    te::status.eq(new_status.as_str()),
                    te::attempt.eq(new_attempt),
                    te::claimed_by.eq(None::<String>),
                    te::lease_expires_at.eq(None::<UniversalTimestamp>),
                    te::completed_at.eq((!retry).then_some(now)),
                    te::error_details.eq(&message),
                    te::updated_at.eq(now),
                ))
                .execute(conn)?;
            if n == 0 {
                continue;
            }
            let task = RecoveredTask {
                task_execution_id: id.into(),
                pipeline_execution_id: pipeline.into(),
                previous_claimant: claimant,
                new_status,
                attempt: uint(new_attempt),
            };
            let kind = if retry { recovery_events::TASK_REQUEUED } else { recovery_events::TASK_FAILED };
            recovery_events::insert_for_task(conn, kind, &task, &message, now)?;
            let ended = task_attempts::Ended {
                task: id,
                pipeline,
                attempt,
                outcome: AttemptOutcome::LeaseExpired,
                runner: task.previous_claimant.as_deref(),
                error: &message,
                started_at,
            };
            task_attempts::record(conn, &ended, now)?;
            recovered.push(task);
        }
        Ok(recovered)
    })
}

/// Id and status of each named task of a pipeline (names that do not exist are absent).
pub fn by_name(
    conn: &mut AnyConnection,
    pipeline: PipelineExecutionId,
    names: &[String],
) -> Result<Vec<(String, TaskExecutionId, TaskStatus)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, UniversalUuid, String)> = in_chunks(names, |names| {
        Ok(te::table
            .filter(te::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
            .filter(te::task_name.eq_any(names))
            .select((te::task_name, te::id, te::status))
            .load(conn)?)
    })?;
    rows.into_iter()
        .map(|(name, id, status)| Ok((name, id.into(), status.parse().map_err(|e| corrupt("task_executions", e))?)))
        .collect()
}

/// True when some task of the pipeline is in one of `statuses` (one index seek per status).
pub fn any_in_status(conn: &mut AnyConnection, pipeline: PipelineExecutionId, statuses: &[TaskStatus]) -> Result<bool> {
    let found: Option<UniversalUuid> = te::table
        .filter(te::pipeline_execution_id.eq(UniversalUuid::from(pipeline)))
        .filter(te::status.eq_any(statuses.iter().map(|s| s.as_str())))
        .select(te::id)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

/// True while the pipeline has a task that is not terminal.
pub fn has_unfinished(conn: &mut AnyConnection, pipeline: PipelineExecutionId) -> Result<bool> {
    any_in_status(conn, pipeline, &[TaskStatus::NotStarted, TaskStatus::Ready, TaskStatus::Running])
}

/// The Ready queue of one workflow, for monitoring.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyQueue {
    /// The workflow.
    pub workflow_name: String,
    /// Ready tasks due now (not waiting for a retry time).
    pub tasks: i64,
    /// When the longest-waiting of them last changed (became Ready).
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
}

/// Per workflow with Ready work: how many tasks are due and since when the oldest waits.
pub fn ready_queues(conn: &mut AnyConnection, now: UniversalTimestamp) -> Result<Vec<ReadyQueue>> {
    use crate::database::universal_types::DbTimestamp;
    use diesel::sql_types::Nullable;
    // One pass over the Ready rows: count and earliest change per workflow. Stored timestamps
    // order as their values on both backends, so MIN is the oldest.
    let oldest = diesel::dsl::sql::<Nullable<DbTimestamp>>("MIN(task_executions.updated_at)");
    let rows: Vec<(String, i64, Option<UniversalTimestamp>)> = te::table
        .inner_join(pe::table)
        .filter(te::status.eq(TaskStatus::Ready.as_str()))
        .filter(te::retry_at.is_null().or(te::retry_at.le(now)))
        // Ready tasks belong to unfinished runs: the join then reads only those runs.
        .filter(pe::status.eq_any(super::unfinished_statuses()))
        .group_by(pe::workflow_name)
        .select((pe::workflow_name, diesel::dsl::count_star(), oldest))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(workflow_name, tasks, oldest)| ReadyQueue {
            workflow_name,
            tasks,
            oldest: oldest.map(|t| t.as_datetime()),
        })
        .collect())
}

/// The runners holding at least one unexpired lease (the runners at work right now).
pub fn runners_holding_leases(conn: &mut AnyConnection, now: UniversalTimestamp) -> Result<Vec<String>> {
    let names: Vec<Option<String>> = te::table
        .filter(te::status.eq(TaskStatus::Running.as_str()))
        .filter(te::lease_expires_at.gt(now))
        .select(te::claimed_by)
        .distinct()
        .load(conn)?;
    Ok(names.into_iter().flatten().collect())
}
