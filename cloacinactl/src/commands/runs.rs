//! `cloacinactl runs list|show|start|retry|cancel|pause|resume|prune`.

use clap::Subcommand;
use cloacina::models::{
    AttemptOutcome, PipelineExecution, PipelineExecutionId, PipelineStatus, TaskAttempt, TaskExecution, TaskStatus,
};
use cloacina::ops::runs::{self, PruneFilter, RunFilter};
use cloacina::ops::{Liveness, Outcome};
use serde_json::json;

use super::output::{self, duration, duration_ms, fail, maybe_time, outln, parse_id, refused, table, time, Failure};
use super::Target;

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only runs in this status (Pending, Running, Paused, Completed, Failed, Cancelled).
        #[arg(long, value_parser = parse_status)]
        status: Option<PipelineStatus>,
        /// Only runs created since: an RFC 3339 time, a date, or an age like 30m, 2h, 7d.
        #[arg(long, value_parser = output::parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Page size (1 to 10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Runs to skip (for the next page: the previous offset plus the limit).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its tasks (attempts, errors, timings, leases), recovery events, input and
    /// output contexts, and why it waits.
    Show {
        /// The run's id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Start a run of a registered workflow at its live version (runners that have it pick it up).
    Start {
        /// The workflow.
        workflow: String,
        /// Input context: JSON text, or @file.json.
        #[arg(long)]
        context: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Retry a failed or cancelled run: a new run of its workflow with the same input.
    Retry {
        /// The run's id.
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run: tasks not yet started never run; running tasks finish.
    Cancel {
        /// The run's id.
        id: String,
    },
    /// Pause a run: nothing new starts until it is resumed.
    Pause {
        /// The run's id.
        id: String,
    },
    /// Resume a paused run.
    Resume {
        /// The run's id.
        id: String,
    },
    /// Delete finished runs (with their tasks, contexts, outputs and recovery events) that ended
    /// longer ago than --older-than, in small batches; running and paused runs are never touched.
    Prune {
        /// Age: 30m, 12h, 30d (runs that ended before now minus this).
        #[arg(long, value_parser = output::parse_since)]
        older_than: chrono::DateTime<chrono::Utc>,
        /// Only runs in these statuses (Completed, Failed, Cancelled; repeatable). Default: all three.
        #[arg(long = "status", value_parser = parse_status)]
        statuses: Vec<PipelineStatus>,
        /// Count what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Runs per batch (1 to 10000): each batch is one short transaction.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_status(s: &str) -> Result<PipelineStatus, String> {
    PipelineStatus::ALL.iter().copied().find(|st| st.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
        let all: Vec<&str> = PipelineStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status `{s}`; one of {}", all.join(", "))
    })
}

/// Attempts a task made: 0 when it never started (skipped, cancelled or still waiting).
/// The attempts of task `t` in a run's attempt history.
fn attempts_of<'a>(t: &TaskExecution, history: &'a [TaskAttempt]) -> Vec<&'a TaskAttempt> {
    history.iter().filter(|a| a.task_execution_id == t.id).collect()
}

/// Where a claimed task's lease stands.
fn lease(t: &TaskExecution, now: chrono::DateTime<chrono::Utc>) -> String {
    match (t.status, &t.claimed_by, t.lease_expires_at) {
        (TaskStatus::Running, Some(_), Some(at)) if at > now => format!("lease until {}", time(at)),
        (TaskStatus::Running, Some(_), Some(at)) => format!("lease expired at {} (runner gone?)", time(at)),
        _ => String::new(),
    }
}

fn run_json(p: &PipelineExecution) -> serde_json::Value {
    json!({ "run": p, "duration_ms": duration_ms(p.started_at.or(Some(p.created_at)), p.completed_at) })
}

pub(crate) fn run(target: &Target, cmd: RunsCommand) -> anyhow::Result<()> {
    let mut conn = target.connect_migrated()?;
    let now = super::now();
    match cmd {
        RunsCommand::List { workflow, status, since, limit, offset, json } => {
            let filter = RunFilter { workflow_name: workflow, status, since, limit, offset, ..Default::default() };
            let page = runs::list(&mut conn, &filter)?;
            let live = Liveness::read(&mut conn, now)?;
            let (runs, more) = (page.runs, page.next.is_some());
            if json {
                let rows: Vec<_> = runs
                    .iter()
                    .map(|p| {
                        let mut row = run_json(p);
                        row["waiting"] = json!(live.waiting(p));
                        row
                    })
                    .collect();
                return output::json(&json!({ "runs": rows, "next_offset": more.then_some(offset + limit) }));
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|p| {
                    let status = match live.waiting(p) {
                        Some(_) => format!("{} (waiting for version)", p.status),
                        None => p.status.to_string(),
                    };
                    vec![
                        p.id.to_string(),
                        p.workflow_name.clone(),
                        status,
                        time(p.created_at),
                        duration(p.started_at.or(Some(p.created_at)), p.completed_at),
                    ]
                })
                .collect();
            table(&["ID", "WORKFLOW", "STATUS", "CREATED", "DURATION"], &rows)?;
            if more {
                outln!("(more may follow: --offset {})", offset + limit);
            }
            Ok(())
        }
        RunsCommand::Show { id, json } => {
            let id: PipelineExecutionId = parse_id("run", &id)?;
            let details =
                runs::details(&mut conn, id, now)?.ok_or_else(|| fail(Failure::NotFound, format!("no run {id}")))?;
            let p = &details.run;
            if json {
                let tasks: Vec<_> = details
                    .tasks
                    .iter()
                    .map(|t| {
                        let attempts = attempts_of(t, &details.attempts);
                        json!({
                            "task": t,
                            "attempt_count": attempts.len(),
                            "attempts": attempts,
                            "duration_ms": duration_ms(t.started_at, t.completed_at),
                        })
                    })
                    .collect();
                let waiting: Vec<String> = details.waiting.iter().map(ToString::to_string).collect();
                let mut doc = run_json(p);
                doc["input"] = json!(details.input);
                doc["output"] = json!(details.output);
                doc["tasks"] = json!(tasks);
                doc["recovery_events"] = json!(details.recovery_events);
                doc["waiting"] = json!(waiting);
                return output::json(&doc);
            }
            outln!("run        {}", p.id);
            outln!("workflow   {} (version {})", p.workflow_name, p.workflow_version);
            outln!("status     {}", p.status);
            for (i, w) in details.waiting.iter().enumerate() {
                outln!("{}{w}", if i == 0 { "waiting    " } else { "           " });
            }
            outln!("created    {}", time(p.created_at));
            outln!("started    {}", maybe_time(p.started_at));
            outln!("finished   {}", maybe_time(p.completed_at));
            if let Some(e) = &p.error_details {
                outln!("error      {e}");
            }
            outln!();
            let rows: Vec<Vec<String>> = details
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.task_name.clone(),
                        t.status.to_string(),
                        format!("{}/{}", attempts_of(t, &details.attempts).len(), t.max_attempts),
                        maybe_time(t.started_at),
                        duration(t.started_at, t.completed_at),
                        t.claimed_by.clone().unwrap_or_else(|| "-".into()),
                        lease(t, now),
                        t.error_details.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(&["TASK", "STATUS", "ATTEMPT", "STARTED", "DURATION", "RUNNER", "LEASE", "ERROR"], &rows)?;
            let ended: Vec<&TaskAttempt> =
                details.attempts.iter().filter(|a| a.outcome != AttemptOutcome::Completed).collect();
            if ended.iter().any(|a| a.outcome != AttemptOutcome::Running) {
                outln!("\nattempts");
                let rows: Vec<Vec<String>> = ended
                    .iter()
                    .map(|a| {
                        let task = details.tasks.iter().find(|t| t.id == a.task_execution_id);
                        vec![
                            task.map_or("-".to_owned(), |t| t.task_name.clone()),
                            a.attempt.to_string(),
                            a.outcome.to_string(),
                            a.runner.clone().unwrap_or_else(|| "-".into()),
                            maybe_time(a.started_at),
                            duration(a.started_at, a.ended_at),
                            a.error_details.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["TASK", "#", "OUTCOME", "RUNNER", "STARTED", "DURATION", "ERROR"], &rows)?;
            }
            if !details.recovery_events.is_empty() {
                outln!("\nrecovery events");
                let rows: Vec<Vec<String>> = details
                    .recovery_events
                    .iter()
                    .map(|e| {
                        let task = e
                            .task_execution_id
                            .and_then(|id| details.tasks.iter().find(|t| t.id == id))
                            .map_or("-".to_owned(), |t| t.task_name.clone());
                        let info = e.details.as_ref().map(ToString::to_string).unwrap_or_default();
                        vec![time(e.recovered_at), e.recovery_type.clone(), task, info]
                    })
                    .collect();
                table(&["AT", "DECISION", "TASK", "DETAILS"], &rows)?;
            }
            Ok(())
        }
        RunsCommand::Start { workflow, context, json } => {
            let input = output::parse_context(context.as_deref())?;
            let id = runs::start(&mut conn, &workflow, &input, now)?.map_err(refused)?;
            if json {
                return output::json(&json!({ "id": id }));
            }
            outln!("started run {id} of {workflow}");
            Ok(())
        }
        RunsCommand::Retry { id, json } => {
            let id: PipelineExecutionId = parse_id("run", &id)?;
            let new = runs::retry(&mut conn, id, now)?.map_err(refused)?;
            if json {
                return output::json(&json!({ "id": new, "retry_of": id }));
            }
            outln!("started run {new}, a retry of {id}");
            Ok(())
        }
        RunsCommand::Cancel { id } => act(&mut conn, &id, runs::cancel, "cancelled", now),
        RunsCommand::Pause { id } => act(&mut conn, &id, runs::pause, "paused", now),
        RunsCommand::Resume { id } => act(&mut conn, &id, resume, "resumed", now),
        RunsCommand::Prune { older_than, statuses, dry_run, batch, json } => {
            if let Some(s) = statuses.iter().find(|s| !s.is_terminal()) {
                return Err(fail(
                    Failure::BadInput,
                    format!("--status {s}: only finished runs (Completed, Failed, Cancelled) are pruned"),
                ));
            }
            let filter = PruneFilter { ended_before: older_than, statuses };
            let (deleted, batches) = if dry_run {
                (runs::count_prunable(&mut conn, &filter)?, 0)
            } else {
                let pause = || {
                    std::thread::sleep(runs::PRUNE_PAUSE);
                    true
                };
                let (deleted, batches) = runs::prune(&mut conn, &filter, batch, pause)?;
                (i64::try_from(deleted).unwrap_or(i64::MAX), batches)
            };
            if json {
                return output::json(
                    &json!({ "runs": deleted, "batches": batches, "dry_run": dry_run, "ended_before": older_than }),
                );
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            outln!("{verb} {deleted} finished run(s) that ended before {}", time(older_than));
            Ok(())
        }
    }
}

/// [`runs::resume`] as a run action: the status it leaves the run in.
fn resume(
    conn: &mut cloacina::database::AnyConnection,
    id: PipelineExecutionId,
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome<PipelineStatus> {
    Ok(runs::resume(conn, id, now)?.map(|r| r.status))
}

/// A run action by id, printing what it did.
fn act(
    conn: &mut cloacina::database::AnyConnection,
    id: &str,
    action: fn(
        &mut cloacina::database::AnyConnection,
        PipelineExecutionId,
        chrono::DateTime<chrono::Utc>,
    ) -> Outcome<PipelineStatus>,
    done: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let id: PipelineExecutionId = parse_id("run", id)?;
    action(conn, id, now)?.map_err(refused)?;
    outln!("{done} run {id}");
    Ok(())
}
