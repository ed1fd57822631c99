//! `cloacinactl runs list|show|cancel`.

use clap::Subcommand;
use cloacina::admin::{self, Liveness};
use cloacina::dal::pipeline_executions::{self as pipelines, PipelineFilter};
use cloacina::models::{PipelineExecutionId, PipelineStatus};

use super::output::{self, duration, maybe_time, parse_id, table, time};
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
    /// Show one run: its tasks (attempts, errors, timings), recovery events, and why it waits.
    Show {
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
}

fn parse_status(s: &str) -> Result<PipelineStatus, String> {
    PipelineStatus::ALL.iter().copied().find(|st| st.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
        let all: Vec<&str> = PipelineStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown status `{s}`; one of {}", all.join(", "))
    })
}

pub(crate) fn run(target: &Target, cmd: RunsCommand) -> anyhow::Result<()> {
    let mut conn = target.connect_migrated()?;
    let now = chrono::Utc::now();
    match cmd {
        RunsCommand::List { workflow, status, since, limit, offset, json } => {
            let filter = PipelineFilter { workflow_name: workflow, status, since, limit, offset, ..Default::default() };
            let runs = pipelines::list(&mut conn, &filter)?;
            let live = Liveness::read(&mut conn, now)?;
            if json {
                let rows: Vec<_> =
                    runs.iter().map(|p| serde_json::json!({ "run": p, "waiting": live.waiting(p) })).collect();
                return output::json(&rows);
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
            table(&["ID", "WORKFLOW", "STATUS", "CREATED (UTC)", "DURATION"], &rows);
            if rows.len() == limit as usize {
                println!("(more may follow: --offset {})", offset + limit);
            }
            Ok(())
        }
        RunsCommand::Show { id, json } => {
            let id: PipelineExecutionId = parse_id("run", &id)?;
            let details = admin::run_details(&mut conn, id, now)?.ok_or_else(|| anyhow::anyhow!("no run {id}"))?;
            if json {
                return output::json(&details);
            }
            let p = &details.pipeline;
            println!("run        {}", p.id);
            println!("workflow   {} (version {})", p.workflow_name, p.workflow_version);
            println!("status     {}", p.status);
            for (i, w) in details.waiting.iter().enumerate() {
                println!("{}{w}", if i == 0 { "waiting    " } else { "           " });
            }
            println!("created    {}", time(p.created_at));
            println!("started    {}", maybe_time(p.started_at));
            println!("finished   {}", maybe_time(p.completed_at));
            if let Some(e) = &p.error_details {
                println!("error      {e}");
            }
            println!();
            let rows: Vec<Vec<String>> = details
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.task_name.clone(),
                        t.status.to_string(),
                        format!("{}/{}", t.attempt, t.max_attempts),
                        maybe_time(t.started_at),
                        duration(t.started_at, t.completed_at),
                        t.claimed_by.clone().unwrap_or_else(|| "-".into()),
                        t.error_details.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(&["TASK", "STATUS", "ATTEMPT", "STARTED (UTC)", "DURATION", "RUNNER", "ERROR"], &rows);
            if !details.recovery_events.is_empty() {
                println!("\nrecovery events");
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
                table(&["AT (UTC)", "DECISION", "TASK", "DETAILS"], &rows);
            }
            Ok(())
        }
        RunsCommand::Cancel { id } => {
            let id: PipelineExecutionId = parse_id("run", &id)?;
            let Some(p) = pipelines::get(&mut conn, id)? else { anyhow::bail!("no run {id}") };
            if pipelines::cancel(&mut conn, id, cloacina::database::UniversalTimestamp::now())? {
                println!("cancelled run {id}");
                Ok(())
            } else {
                let status = pipelines::get(&mut conn, id)?.map_or(p.status, |p| p.status);
                anyhow::bail!("run {id} is already {status}; nothing to cancel")
            }
        }
    }
}
