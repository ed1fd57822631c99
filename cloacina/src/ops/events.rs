//! Run and task state changes as events, read from the database: what the server streams at
//! `/api/v1/events` and `/api/v1/runs/{id}/events` (ADR 0014).
//!
//! A [`Follower`] reads, on each [`Follower::poll`], the runs that may have changed (the
//! unfinished ones and those finished recently, or one run) and their tasks changed since it
//! last looked, and returns an event for each row whose state (status, and a task's attempt) it
//! has not delivered yet. A change shorter than the time between two polls shows as the state it
//! ended in. Every event carries a `cursor` (its change time); a reader that reconnects
//! with the last cursor it saw gets every change recorded after it that is still in the
//! database (the latest state of each run and task, not every intermediate one).
//!
//! Change times come from the clocks of the processes that wrote them, and a change may commit
//! a moment after its time was taken: a follower reads again [`OVERLAP`] back and skips what it
//! already delivered, so a late commit or a clock up to that much behind is still seen. Hosts
//! need synchronised clocks, as leases already assume.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dal::{pipeline_executions as runs, task_executions as tasks};
use crate::database::AnyConnection;
use crate::models::PipelineExecutionId;
use crate::Error;

use super::{Outcome, Refused};

/// Runs whose tasks one statement reads.
const RUNS_PER_READ: usize = 500;

/// How far back each poll reads again, for changes that committed late.
pub const OVERLAP: Duration = Duration::from_secs(5);

/// One state change of a run or a task.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `run` or `task`.
    pub kind: String,
    /// The run.
    pub run_id: PipelineExecutionId,
    /// Its workflow.
    pub workflow: String,
    /// The task's name (task events).
    pub task: Option<String>,
    /// The run's or task's status after the change.
    pub status: String,
    /// The task's attempt (task events).
    pub attempt: Option<u32>,
    /// When the change was recorded.
    pub at: DateTime<Utc>,
    /// Where to resume after this event (`Last-Event-ID`): its change time in microseconds.
    pub cursor: String,
}

/// A reader of the changes: of every run, or of one.
#[derive(Debug)]
pub struct Follower {
    only: Option<PipelineExecutionId>,
    /// The newest change time delivered (or where it started).
    since: DateTime<Utc>,
    /// The state it last delivered of each row of the runs it follows: row id → (its run,
    /// status, attempt). A row whose state did not change (a lease renewal) is not delivered
    /// again; entries go when their run leaves the followed set.
    seen: HashMap<uuid::Uuid, (PipelineExecutionId, String, Option<u32>)>,
}

impl Follower {
    /// A follower of run `only` (or of every run) that delivers changes recorded after `from`.
    pub fn new(only: Option<PipelineExecutionId>, from: DateTime<Utc>) -> Self {
        Self { only, since: from, seen: HashMap::new() }
    }

    /// A follower of run `id` from `from`, refused when there is no such run.
    pub fn of_run(conn: &mut AnyConnection, id: PipelineExecutionId, from: DateTime<Utc>) -> Outcome<Self> {
        Ok(match runs::get(conn, id)? {
            Some(_) => Ok(Self::new(Some(id), from)),
            None => Err(Refused::NoRun(id)),
        })
    }

    /// The time a cursor (an event's `cursor`, a `Last-Event-ID`) stands for.
    pub fn resume_point(cursor: &str) -> Option<DateTime<Utc>> {
        cursor.trim().parse::<i64>().ok().and_then(DateTime::from_timestamp_micros)
    }

    /// The changes recorded since the last poll, oldest first.
    pub fn poll(&mut self, conn: &mut AnyConnection) -> Result<Vec<Event>, Error> {
        let from = self.since - chrono::Duration::from_std(OVERLAP).unwrap_or_default();
        let active = runs::active_since(conn, from, self.only)?;
        let ids: Vec<PipelineExecutionId> = active.iter().map(|r| r.id).collect();
        let workflow_of: HashMap<PipelineExecutionId, String> =
            active.iter().map(|r| (r.id, r.workflow_name.clone())).collect();
        let mut changes = Vec::new();
        for r in active.iter().filter(|r| r.updated_at > from) {
            changes.push((r.id.0, Event::run(r.id, &r.workflow_name, r.status.as_str(), r.updated_at)));
        }
        // In chunks: a stream resumed far back may follow many finished runs, more than a
        // statement may bind (SQLite's limit).
        let changed: Vec<_> = ids
            .chunks(RUNS_PER_READ)
            .map(|chunk| tasks::changed_since(conn, chunk, from))
            .collect::<Result<Vec<_>, _>>()?;
        for t in changed.into_iter().flatten() {
            let workflow = workflow_of.get(&t.pipeline_execution_id).cloned().unwrap_or_default();
            let event = Event {
                kind: "task".to_owned(),
                run_id: t.pipeline_execution_id,
                workflow,
                task: Some(t.task_name.clone()),
                status: t.status.as_str().to_owned(),
                attempt: Some(t.attempt),
                at: t.updated_at,
                cursor: cursor(t.updated_at),
            };
            changes.push((t.id.0, event));
        }
        // By time, tasks before runs at one time, and a run's end last: it commits with its last
        // tasks' outcomes (one transaction), so they are in the same poll, and a reader that
        // stops at the run's end has every change of it.
        let ended = |e: &Event| e.kind == "run" && matches!(e.status.as_str(), "Completed" | "Failed" | "Cancelled");
        changes.sort_by_key(|(key, e)| (ended(e), e.at, e.kind == "run", *key));
        let mut fresh = Vec::new();
        for (key, event) in changes {
            let state = (event.run_id, event.status.clone(), event.attempt);
            self.since = self.since.max(event.at);
            if self.seen.get(&key) == Some(&state) {
                continue;
            }
            self.seen.insert(key, state);
            fresh.push(event);
        }
        self.seen.retain(|_, (run, _, _)| workflow_of.contains_key(run));
        Ok(fresh)
    }
}

impl Event {
    fn run(id: PipelineExecutionId, workflow: &str, status: &str, at: DateTime<Utc>) -> Self {
        Event {
            kind: "run".to_owned(),
            run_id: id,
            workflow: workflow.to_owned(),
            task: None,
            status: status.to_owned(),
            attempt: None,
            at,
            cursor: cursor(at),
        }
    }
}

fn cursor(at: DateTime<Utc>) -> String {
    at.timestamp_micros().to_string()
}
