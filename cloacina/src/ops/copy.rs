//! `db copy`: every table of one Cloacina database into another, between any two databases this
//! build supports (SQLite file, PostgreSQL database or schema), with ids, timestamps (to the
//! microsecond), JSON documents, statuses, claims, leases and retry times unchanged, so in-flight
//! work continues on the target.
//!
//! - The source is only read, inside one snapshot ([`read_snapshot`]): a runner writing to it
//!   meanwhile cannot tear the copy.
//! - The target must be migrated to the same schema version and empty; the whole copy is one
//!   transaction on it, verified before it commits: per table, the row count and an
//!   order-independent checksum of every column of every row, computed on the rows read from the
//!   source and again on the rows read back from the target (values in a canonical form both
//!   backends agree on). A mismatch rolls everything back.
//! - Rows move in keyset pages (by primary key) of at most [`MAX_BATCH`] rows and under both
//!   backends' bind-parameter limits, so memory stays bounded whatever the table sizes.
//! - Tables go parents first ([`crate::for_each_table`] order), so foreign keys hold row by row.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::dal::row_counts;
use crate::database::backend::bulk_insert;
use crate::database::migrate;
use crate::database::{
    read_snapshot, write_transaction, AnyConnection, UniversalBool, UniversalJson, UniversalTimestamp, UniversalUuid,
};

/// Most rows per page. Pages are also kept under 30,000 bound values (SQLite allows 32,766).
pub const MAX_BATCH: usize = 5_000;

/// Why a copy was refused or failed. Nothing is written to the target in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The source has migrations this binary ships but it lacks.
    #[error("the source database has {pending} pending migration(s): migrate it first (`cloacinactl db migrate`)")]
    SourceNotMigrated {
        /// How many.
        pending: usize,
    },
    /// The target is not (fully) migrated.
    #[error(
        "the target database is not migrated ({pending} migration(s) pending): run `cloacinactl db migrate` on it \
         first"
    )]
    TargetNotMigrated {
        /// How many.
        pending: usize,
    },
    /// Source and target carry different migrations.
    #[error("source and target differ in schema version (source {source_version}, target {target_version})")]
    SchemaMismatch {
        /// The source's newest applied migration.
        source_version: String,
        /// The target's.
        target_version: String,
    },
    /// The target already holds rows.
    #[error("the target database is not empty ({table} has {rows} row(s)): copy into a new, migrated database")]
    TargetNotEmpty {
        /// The first table found with rows.
        table: &'static str,
        /// Its row count.
        rows: i64,
    },
    /// A runner appears to be using the source.
    #[error("the source database has a live runner ({0}): stop its runners first, or force the copy")]
    LiveRunner(String),
    /// What was read back from the target differs from what was read from the source.
    #[error(
        "verification failed for {table}: source {source_rows} row(s), checksum {source_checksum}; target \
         {target_rows} row(s), checksum {target_checksum}; nothing was committed"
    )]
    Mismatch {
        /// The table.
        table: &'static str,
        /// Rows read from the source.
        source_rows: u64,
        /// Their checksum.
        source_checksum: String,
        /// Rows read back from the target.
        target_rows: u64,
        /// Their checksum.
        target_checksum: String,
    },
    /// A source row holds a NUL character (written by an older version on SQLite).
    #[error(
        "row {key} of {table}: column `{column}` holds a NUL character (U+0000), which Cloacina no longer accepts and \
         PostgreSQL cannot store; correct or delete that row in the source and copy again (nothing was committed)"
    )]
    HoldsNul {
        /// The table.
        table: &'static str,
        /// The row's primary key.
        key: String,
        /// The column.
        column: &'static str,
    },
    /// A database error on either side.
    #[error(transparent)]
    Database(#[from] crate::database::Error),
}

impl From<diesel::result::Error> for CopyError {
    fn from(e: diesel::result::Error) -> Self {
        CopyError::Database(e.into())
    }
}

/// How to copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Copy even when the source is in use ([`super::liveness::in_use`]: a runner said it was
    /// alive within [`super::LIVE_WINDOW`], or a task holds an unexpired lease). The copy is still
    /// one snapshot: work the runner does after it began is not in the target.
    pub force: bool,
}

/// Where a copy stands, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// The table being copied.
    pub table: &'static str,
    /// Rows of it copied so far.
    pub copied: u64,
    /// Rows of it in the source.
    pub total: u64,
    /// Rows copied so far, all tables.
    pub copied_all: u64,
    /// Rows in the source, all tables.
    pub total_all: u64,
}

/// One table's share of a copy or a checksum run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSum {
    /// The table.
    pub table: &'static str,
    /// Its rows.
    pub rows: u64,
    /// The checksum of every column of every row, independent of row order and backend.
    pub checksum: String,
}

/// What a copy did.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Every table, in copy order, as verified on the target.
    pub tables: Vec<TableSum>,
    /// Rows copied in all.
    pub rows: u64,
    /// How long it took, verification included.
    pub elapsed: Duration,
}

/// Copies every table of `source` into `target` (see the module documentation); `progress` is
/// called after each page.
pub fn copy(
    source: &mut AnyConnection,
    target: &mut AnyConnection,
    options: CopyOptions,
    now: DateTime<Utc>,
    progress: &mut dyn FnMut(Progress),
) -> Result<CopyReport, CopyError> {
    let started = Instant::now();
    check_schemas(source, target)?;
    target_empty(target)?;
    read_snapshot(source, |source| {
        if !options.force {
            if let Some(live) = live_runner(source, now)? {
                return Err(CopyError::LiveRunner(live));
            }
        }
        let totals = row_counts(source)?;
        let total_all = totals.iter().map(|(_, n)| u64::try_from(*n).unwrap_or(0)).sum();
        let mut copied_all = 0u64;
        let tables = write_transaction(target, |target| {
            // Again inside the transaction (on SQLite it holds the write lock): still empty.
            target_empty(target)?;
            let mut tables = Vec::new();
            macro_rules! copy_each {
                ($($table:ident),*) => {$(
                    let total = totals.iter().find(|(t, _)| *t == stringify!($table)).map_or(0, |(_, n)| *n);
                    let mut pages = Pager { total: u64::try_from(total).unwrap_or(0), copied_all: &mut copied_all, total_all, progress: &mut *progress };
                    tables.push(copy_table::<$table::Table>(source, target, &mut pages)?);
                )*};
            }
            crate::for_each_table!(copy_each);
            Ok::<_, CopyError>(tables)
        })?;
        let rows = tables.iter().map(|t| t.rows).sum();
        Ok(CopyReport { tables, rows, elapsed: started.elapsed() })
    })
}

/// Row count and checksum of every table of `conn`, as [`copy`] verifies them (on one snapshot).
pub fn checksums(conn: &mut AnyConnection) -> Result<Vec<TableSum>, CopyError> {
    read_snapshot(conn, |conn| {
        let mut sums = Vec::new();
        macro_rules! sum_each {
            ($($table:ident),*) => {$(
                let mut sum = Sum::default();
                scan::<$table::Table>(conn, &mut |row| sum.add(row), &mut |_| true)?;
                sums.push(sum.of(stringify!($table)));
            )*};
        }
        crate::for_each_table!(sum_each);
        Ok(sums)
    })
}

/// Every row of every table of `conn` in the canonical text the checksums hash, sorted within
/// each table: for tests and audits that compare two databases column by column. Holds every
/// row in memory.
pub fn canonical_rows(conn: &mut AnyConnection) -> Result<Vec<(&'static str, Vec<String>)>, CopyError> {
    read_snapshot(conn, |conn| {
        let mut all = Vec::new();
        macro_rules! dump_each {
            ($($table:ident),*) => {$(
                let mut rows = Vec::new();
                scan::<$table::Table>(conn, &mut |row| rows.push(row.to_owned()), &mut |_| true)?;
                rows.sort_unstable();
                all.push((stringify!($table), rows));
            )*};
        }
        crate::for_each_table!(dump_each);
        Ok(all)
    })
}

/// No table of the target has a row.
fn target_empty(target: &mut AnyConnection) -> Result<(), CopyError> {
    match row_counts(target)?.into_iter().find(|(_, n)| *n > 0) {
        Some((table, rows)) => Err(CopyError::TargetNotEmpty { table, rows }),
        None => Ok(()),
    }
}

/// Both fully migrated, to the same version.
fn check_schemas(source: &mut AnyConnection, target: &mut AnyConnection) -> Result<(), CopyError> {
    let from = migrate::status(source)?;
    let to = migrate::status(target)?;
    if !from.pending.is_empty() {
        return Err(CopyError::SourceNotMigrated { pending: from.pending.len() });
    }
    if !to.pending.is_empty() {
        return Err(CopyError::TargetNotMigrated { pending: to.pending.len() });
    }
    if from.applied != to.applied {
        let newest = |v: &[String]| v.last().cloned().unwrap_or_else(|| "none".to_owned());
        return Err(CopyError::SchemaMismatch {
            source_version: newest(&from.applied),
            target_version: newest(&to.applied),
        });
    }
    Ok(())
}

/// A description of a runner that seems alive on `conn`'s database, if any.
fn live_runner(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<Option<String>, CopyError> {
    Ok(super::liveness::in_use(conn, now)?)
}

/// A table [`copy`] knows how to move: its row type with every column, its key, and the
/// canonical text of a row.
trait CopyTable {
    const NAME: &'static str;
    const COLUMNS: &'static [&'static str];
    type Row: Send;
    type Key: Canonical;
    fn page(conn: &mut AnyConnection, after: Option<&Self::Key>, limit: i64) -> QueryResult<Vec<Self::Row>>;
    fn key(row: &Self::Row) -> Self::Key;
    fn insert(conn: &mut AnyConnection, rows: &[Self::Row]) -> QueryResult<usize>;
    fn canonical(row: &Self::Row, out: &mut String);
    /// The first column of `row` holding a NUL character, if any.
    fn holding_nul(row: &Self::Row) -> Option<&'static str>;
}

/// Rows per page for a table of `columns` columns.
fn page_size(columns: usize) -> i64 {
    i64::try_from((30_000 / columns.max(1)).min(MAX_BATCH)).unwrap_or(1)
}

/// Progress bookkeeping for one table's copy.
struct Pager<'a> {
    total: u64,
    copied_all: &'a mut u64,
    total_all: u64,
    progress: &'a mut dyn FnMut(Progress),
}

fn copy_table<T: CopyTable>(
    source: &mut AnyConnection,
    target: &mut AnyConnection,
    pager: &mut Pager<'_>,
) -> Result<TableSum, CopyError> {
    // The source is read (and hashed) on a thread of its own while this one writes the pages it
    // has read: the two databases work at once. Two pages in flight bound the memory.
    let (read, written) = std::thread::scope(|scope| {
        let (pages, received) = std::sync::mpsc::sync_channel::<Vec<T::Row>>(2);
        let reader = scope.spawn(move || {
            let mut read = Sum::default();
            scan::<T>(source, &mut |row| read.add(row), &mut |rows| pages.send(rows).is_ok()).map(|()| read)
        });
        let mut written = Ok(0u64);
        for rows in &received {
            if let Some((row, column)) = rows.iter().find_map(|r| T::holding_nul(r).map(|c| (r, c))) {
                let mut key = String::new();
                Canonical::write(&T::key(row), &mut key);
                written = Err(CopyError::HoldsNul { table: T::NAME, key, column });
                break;
            }
            if let Err(e) = T::insert(target, &rows) {
                written = Err(e.into());
                break; // the reader stops at its next page
            }
            let copied = written.as_ref().map_or(0, |n| *n) + rows.len() as u64;
            written = Ok(copied);
            *pager.copied_all += rows.len() as u64;
            (pager.progress)(Progress {
                table: T::NAME,
                copied,
                total: pager.total.max(copied),
                copied_all: *pager.copied_all,
                total_all: pager.total_all.max(*pager.copied_all),
            });
        }
        drop(received);
        let read = reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, written)
    });
    written?;
    let read = read?;
    // Statistics of the new rows first: reading them back pages by the primary key's index.
    crate::database::analyze(target, T::NAME)?;
    let mut back = Sum::default();
    scan::<T>(target, &mut |row| back.add(row), &mut |_| true)?;
    let (source_sum, target_sum) = (read.of(T::NAME), back.of(T::NAME));
    if source_sum != target_sum {
        return Err(CopyError::Mismatch {
            table: T::NAME,
            source_rows: source_sum.rows,
            source_checksum: source_sum.checksum,
            target_rows: target_sum.rows,
            target_checksum: target_sum.checksum,
        });
    }
    Ok(target_sum)
}

/// Reads every row of `T` page by page: `row` gets each row's canonical text, then `page` the
/// page itself (the scan stops when it returns false).
fn scan<T: CopyTable>(
    conn: &mut AnyConnection,
    row: &mut dyn FnMut(&str),
    page: &mut dyn FnMut(Vec<T::Row>) -> bool,
) -> QueryResult<()> {
    let limit = page_size(T::COLUMNS.len());
    let (mut after, mut text) = (None, String::new());
    loop {
        let rows = T::page(conn, after.as_ref(), limit)?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = Some(T::key(last));
        for r in &rows {
            text.clear();
            T::canonical(r, &mut text);
            row(&text);
        }
        if !page(rows) {
            return Ok(());
        }
    }
}

/// An order-independent digest of a set of rows: the count, and the wrapping sum of the first
/// 128 bits of each row's SHA-256.
#[derive(Debug, Default, Clone, Copy)]
struct Sum {
    rows: u64,
    sum: u128,
}

impl Sum {
    fn add(&mut self, row: &str) {
        let hash = Sha256::digest(row.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(first));
    }

    fn of(self, table: &'static str) -> TableSum {
        TableSum { table, rows: self.rows, checksum: format!("{:032x}", self.sum) }
    }
}

/// A column value's canonical text: the same on both backends for the same stored value.
trait Canonical {
    fn write(&self, out: &mut String);

    /// True when the value holds a NUL character, which Cloacina refuses on both backends
    /// (`crate::input`) and PostgreSQL cannot store; an older SQLite database may still hold one.
    fn holds_nul(&self) -> bool {
        false
    }
}

impl<T: Canonical> Canonical for Option<T> {
    fn write(&self, out: &mut String) {
        match self {
            Some(v) => v.write(out),
            None => out.push_str("null"),
        }
    }

    fn holds_nul(&self) -> bool {
        self.as_ref().is_some_and(Canonical::holds_nul)
    }
}

impl Canonical for UniversalUuid {
    fn write(&self, out: &mut String) {
        out.push_str(self.0.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
    }
}

/// Microseconds since the epoch (both backends keep exactly microseconds).
impl Canonical for UniversalTimestamp {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{}", self.as_datetime().timestamp_micros());
    }
}

impl Canonical for UniversalBool {
    fn write(&self, out: &mut String) {
        out.push_str(if self.0 { "true" } else { "false" });
    }
}

impl Canonical for UniversalJson {
    fn write(&self, out: &mut String) {
        canonical_json(&self.0, out);
    }

    fn holds_nul(&self) -> bool {
        crate::input::document("", &self.0).is_err()
    }
}

/// Length-prefixed, so no content can be mistaken for a separator.
impl Canonical for String {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{}:", self.len());
        out.push_str(self);
    }

    fn holds_nul(&self) -> bool {
        self.contains('\0')
    }
}

impl Canonical for i32 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Canonical for i64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Canonical for Vec<u8> {
    fn write(&self, out: &mut String) {
        out.push_str("0x");
        for b in self {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// JSON with object keys sorted at every level and strings length-prefixed (PostgreSQL's `jsonb`
/// reorders keys; SQLite keeps
/// the text as written).
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:{key}:", key.len());
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        Value::String(text) => {
            let _ = write!(out, "\"{}:{text}", text.len());
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// One module per table: its full row type and the [`CopyTable`] impl over it.
macro_rules! copy_tables {
    ($($table:ident by $key:ident: $key_ty:ty { $($column:ident: $ty:ty),* $(,)? })*) => {$(
        mod $table {
            #[allow(unused_imports)]
            use super::*;
            use crate::database::schema::$table as t;

            #[derive(Queryable, Selectable, Insertable)]
            #[diesel(table_name = t, treat_none_as_default_value = false)]
            pub(super) struct Row {
                $($column: $ty,)*
            }

            pub(super) struct Table;

            impl CopyTable for Table {
                const NAME: &'static str = stringify!($table);
                const COLUMNS: &'static [&'static str] = &[$(stringify!($column)),*];
                type Row = Row;
                type Key = $key_ty;

                fn page(conn: &mut AnyConnection, after: Option<&$key_ty>, limit: i64) -> QueryResult<Vec<Row>> {
                    let query = t::table.select(Row::as_select()).order(t::$key.asc()).limit(limit);
                    match after {
                        Some(key) => query.filter(t::$key.gt(key.clone())).load(conn),
                        None => query.load(conn),
                    }
                }

                fn key(row: &Row) -> $key_ty {
                    row.$key.clone()
                }

                fn insert(conn: &mut AnyConnection, rows: &[Row]) -> QueryResult<usize> {
                    bulk_insert!(
                        conn,
                        t::table,
                        rows,
                        rows.iter().map(|r| ($(t::$column.eq(&r.$column),)*)).collect::<Vec<_>>()
                    )
                }

                fn holding_nul(row: &Row) -> Option<&'static str> {
                    $(
                        if Canonical::holds_nul(&row.$column) {
                            return Some(stringify!($column));
                        }
                    )*
                    None
                }

                fn canonical(row: &Row, out: &mut String) {
                    out.push('[');
                    $(
                        Canonical::write(&row.$column, out);
                        out.push(',');
                    )*
                    out.pop();
                    out.push(']');
                }
            }
        }
    )*};
}

type Uuid = UniversalUuid;
type Time = UniversalTimestamp;
type Json = UniversalJson;
type Flag = UniversalBool;

copy_tables! {
    contexts by id: Uuid { id: Uuid, value: Json, created_at: Time, updated_at: Time }
    pipeline_executions by id: Uuid {
        id: Uuid, workflow_name: String, workflow_version: String, status: String, context_id: Option<Uuid>,
        final_context_id: Option<Uuid>, error_details: Option<String>, started_at: Option<Time>,
        completed_at: Option<Time>, created_at: Time, updated_at: Time,
    }
    task_executions by id: Uuid {
        id: Uuid, pipeline_execution_id: Uuid, task_name: String, status: String, attempt: i32, max_attempts: i32,
        retry_at: Option<Time>, claimed_by: Option<String>, lease_expires_at: Option<Time>, started_at: Option<Time>,
        completed_at: Option<Time>, error_details: Option<String>, trigger_rules: Json, task_configuration: Json,
        created_at: Time, updated_at: Time,
    }
    task_execution_metadata by id: Uuid {
        id: Uuid, task_execution_id: Uuid, pipeline_execution_id: Uuid, task_name: String, context_id: Option<Uuid>,
        created_at: Time, updated_at: Time,
    }
    recovery_events by id: Uuid {
        id: Uuid, pipeline_execution_id: Uuid, task_execution_id: Option<Uuid>, recovery_type: String,
        details: Option<Json>, recovered_at: Time, created_at: Time, updated_at: Time,
    }
    task_attempts by id: Uuid {
        id: Uuid, task_execution_id: Uuid, pipeline_execution_id: Uuid, attempt: i32, outcome: String,
        runner: Option<String>, error_details: Option<String>, started_at: Option<Time>, ended_at: Time,
        created_at: Time, updated_at: Time,
    }
    workflow_registry by id: Uuid {
        id: Uuid, workflow_name: String, version: String, graph: Json, first_seen_at: Time, last_seen_at: Time,
        created_at: Time, updated_at: Time,
    }
    workflow_packages by id: Uuid {
        id: Uuid, package_name: String, version: String, description: Option<String>, content: Vec<u8>,
        content_sha256: String, metadata: Json, created_at: Time, updated_at: Time, status: String,
        error: Option<String>,
    }
    cron_schedules by id: Uuid {
        id: Uuid, workflow_name: String, cron_expression: String, timezone: String, context: Json, enabled: Flag,
        catchup_policy: String, max_catchup: i32, start_at: Option<Time>, end_at: Option<Time>,
        next_run_at: Option<Time>, last_run_at: Option<Time>, created_at: Time, updated_at: Time,
        trigger_name: Option<String>,
    }
    cron_executions by id: Uuid {
        id: Uuid, schedule_id: Uuid, scheduled_time: Time, pipeline_execution_id: Option<Uuid>, claimed_by: String,
        claimed_at: Time, created_at: Time, updated_at: Time,
    }
    trigger_schedules by trigger_name: String {
        trigger_name: String, workflow_name: String, poll_interval_ms: i64, allow_concurrent: Flag, enabled: Flag,
        last_poll_tick: i64, created_at: Time, updated_at: Time,
    }
    trigger_executions by id: Uuid {
        id: Uuid, trigger_name: String, context_hash: String, pipeline_execution_id: Option<Uuid>, fired_by: String,
        fired_at: Time,
    }
    runners by runner_name: String {
        runner_name: String, host_id: String, host_name: String, pid: i64, last_seen_at: Time, created_at: Time,
        updated_at: Time, workflow_versions: Json, retired_versions: Json,
    }
}

/// The columns [`copy`] moves for each table, in [`crate::for_each_table`] order: a test checks
/// them against the tables the migrations create, so a column added later cannot be left behind.
pub fn copied_columns() -> Vec<(&'static str, &'static [&'static str])> {
    macro_rules! columns_each {
        ($($table:ident),*) => {
            vec![$((stringify!($table), <$table::Table as CopyTable>::COLUMNS)),*]
        };
    }
    crate::for_each_table!(columns_each)
}
