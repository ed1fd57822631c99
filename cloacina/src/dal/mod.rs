//! The data access layer: one module per table, named after it; functions are verbs on that
//! table and take `&mut AnyConnection`.
//!
//! Invariants:
//! - Every status change is a conditional `UPDATE … WHERE status = <expected>` (and, for a claimed
//!   task, `AND claimed_by = <runner>`); functions report whether they won (`bool`, `Option`, `Vec`).
//! - A transaction that reads and then writes uses [`write_transaction`] (`BEGIN IMMEDIATE` on SQLite).
//! - Backend differences live in `database/backend/` (mirrored functions reached through
//!   `dispatch!`); `on_inner!` compiles one expression for each backend where Diesel's types
//!   require it (the SQL is the same).
//! - Row structs (`…Row`) are private to the DAL; callers get [`crate::models`] records.

pub mod contexts;
pub mod cron_executions;
pub mod cron_schedules;
pub mod locks;
pub mod pipeline_executions;
pub mod recovery_events;
pub mod runners;
pub mod task_attempts;
pub mod task_execution_metadata;
pub mod task_executions;
pub mod trigger_executions;
pub mod trigger_schedules;
pub mod workflow_packages;
pub mod workflow_registry;

pub use crate::database::{serialize_writes, write_transaction};
use crate::database::{Error, UniversalTimestamp};

/// Number of rows in each table of [`TABLES`](crate::database::schema::TABLES), in that order.
pub fn row_counts(conn: &mut crate::database::AnyConnection) -> crate::database::Result<Vec<(&'static str, i64)>> {
    use crate::database::schema::*;
    use diesel::prelude::*;
    macro_rules! counts {
        ($($table:ident),*) => {
            vec![$((stringify!($table), $table::table.count().get_result::<i64>(conn)?)),*]
        };
    }
    Ok(crate::for_each_table!(counts))
}

/// Rows per multi-row `INSERT`: keeps bind parameters under SQLite's 32,766 and Postgres' 65,535.
const INSERT_CHUNK: usize = 1_000;

/// Values per `IN (…)` list: SQLite binds each one (PostgreSQL binds one array), and a list longer
/// than SQLite's 32,766 variables fails, so functions taking a list of names run in chunks.
const LIST_CHUNK: usize = 1_000;

/// Runs `f` on each chunk of `items` (at most [`LIST_CHUNK`] long) and concatenates the results.
fn in_chunks<T, R>(
    items: &[T],
    mut f: impl FnMut(&[T]) -> crate::database::Result<Vec<R>>,
) -> crate::database::Result<Vec<R>> {
    let mut out = Vec::new();
    for chunk in items.chunks(LIST_CHUNK) {
        out.extend(f(chunk)?);
    }
    Ok(out)
}

/// The stored names of the statuses of a run that has not ended (Pending, Running, Paused).
fn unfinished_statuses() -> Vec<&'static str> {
    crate::models::PipelineStatus::ALL.iter().filter(|s| !s.is_terminal()).map(|s| s.as_str()).collect()
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> Error {
    Error::Corrupt { table, detail: detail.to_string() }
}

fn time(t: Option<UniversalTimestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.map(|t| t.as_datetime())
}

/// Saturating `u32` → `i32` for attempt counts stored as `integer`.
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `i32` → `u32` for stored counts, which are never negative.
fn uint(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}
