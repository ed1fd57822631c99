//! `cloacinactl schedules list|show|pause|resume|delete`.

use clap::Subcommand;
use cloacina::models::{CronSchedule, CronScheduleId};
use cloacina::ops::schedules::{self, ChangeSchedule, CreateSchedule};

use super::output::outln;
use super::output::{self, maybe_time, parse_id, table, time};
use super::Target;

/// `schedules` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SchedulesCommand {
    /// List every cron schedule.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a schedule: its settings, next fire times and recent fire times with their runs.
    Show {
        /// The schedule's id.
        id: String,
        /// How many upcoming and recent fire times to show (1 to 1000).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Pause a schedule: it fires nothing until resumed.
    Pause {
        /// The schedule's id.
        id: String,
    },
    /// Resume a paused schedule from now (times passed while paused are not run).
    Resume {
        /// The schedule's id.
        id: String,
    },
    /// Delete a schedule and its fire-time history (the runs it started stay).
    Delete {
        /// The schedule's id.
        id: String,
    },
    /// Create a schedule for a registered workflow.
    Create {
        /// The workflow.
        workflow: String,
        /// Cron expression (5 fields, or 6 with seconds first).
        expression: String,
        /// IANA time zone (default UTC).
        #[arg(long)]
        timezone: Option<String>,
        /// Input context of every run: JSON text, or @file.json.
        #[arg(long)]
        context: Option<String>,
        /// Missed fire times: Skip (default), RunOnce or RunAll.
        #[arg(long)]
        catchup: Option<String>,
        /// Most missed fire times RunAll replays.
        #[arg(long)]
        max_catchup: Option<u32>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a schedule's expression, time zone or context (its next fire time is recomputed).
    Update {
        /// The schedule's id.
        id: String,
        /// New cron expression.
        #[arg(long)]
        expression: Option<String>,
        /// New IANA time zone.
        #[arg(long)]
        timezone: Option<String>,
        /// New input context: JSON text, or @file.json.
        #[arg(long)]
        context: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn catchup(text: Option<&str>) -> anyhow::Result<Option<cloacina::models::CatchupPolicy>> {
    text.map(|t| t.parse().map_err(|e| output::fail(output::Failure::BadInput, format!("--catchup: {e}")))).transpose()
}

pub(crate) fn run(target: &Target, cmd: SchedulesCommand) -> anyhow::Result<()> {
    let mut conn = target.connect_migrated()?;
    let now = super::now();
    let id_of = |s: &str| parse_id::<CronScheduleId>("schedule", s);
    match cmd {
        SchedulesCommand::List { json } => {
            let all = schedules::list(&mut conn)?;
            if json {
                return output::json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.workflow_name.clone(),
                        s.cron_expression.clone(),
                        s.timezone.clone(),
                        state(s).to_owned(),
                        s.catchup_policy.as_str().to_owned(),
                        maybe_time(s.next_run_at),
                        maybe_time(s.last_run_at),
                    ]
                })
                .collect();
            table(&["ID", "WORKFLOW", "CRON", "TIME ZONE", "STATE", "CATCH-UP", "NEXT", "LAST"], &rows)?;
            Ok(())
        }
        SchedulesCommand::Show { id, count, json } => {
            let details = schedules::details(&mut conn, id_of(&id)?, count as usize, count, now)?;
            let (schedule, upcoming, history) = (details.schedule, details.next_fire_times, details.history);
            if json {
                let doc = serde_json::json!({ "schedule": schedule, "upcoming": upcoming, "recent": history });
                return output::json(&doc);
            }
            outln!("schedule   {}", schedule.id);
            outln!("workflow   {}", schedule.workflow_name);
            outln!("cron       {} ({})", schedule.cron_expression, schedule.timezone);
            outln!("state      {}", state(&schedule));
            outln!("catch-up   {} (at most {})", schedule.catchup_policy.as_str(), schedule.max_catchup);
            outln!("window     {} .. {}", maybe_time(schedule.start_at), maybe_time(schedule.end_at));
            outln!("context    {}", schedule.context);
            let label = if schedule.enabled { "next fire times" } else { "next fire times if resumed now" };
            outln!("\n{label}");
            for t in upcoming {
                outln!("  {}", time(t));
            }
            outln!("\nrecent fire times");
            let rows: Vec<Vec<String>> = history
                .iter()
                .map(|f| {
                    let run =
                        f.pipeline_execution_id.map_or_else(|| "(claimed, not started)".to_owned(), |p| p.to_string());
                    vec![time(f.scheduled_time), run, f.claimed_by.clone()]
                })
                .collect();
            table(&["FIRE TIME", "RUN", "RUNNER"], &rows)?;
            Ok(())
        }
        SchedulesCommand::Pause { id } => {
            let id = id_of(&id)?;
            let changed = schedules::pause(&mut conn, id, now)?;
            outln!(
                "{}",
                if changed { format!("paused schedule {id}") } else { format!("schedule {id} was already paused") }
            );
            Ok(())
        }
        SchedulesCommand::Resume { id } => {
            let id = id_of(&id)?;
            let changed = schedules::resume(&mut conn, id, now)?;
            outln!(
                "{}",
                if changed { format!("resumed schedule {id}") } else { format!("schedule {id} was not paused") }
            );
            Ok(())
        }
        SchedulesCommand::Create {
            workflow,
            expression,
            timezone,
            context,
            catchup: policy,
            max_catchup,
            paused,
            json,
        } => {
            let request = CreateSchedule {
                workflow,
                expression,
                timezone,
                context: context.as_deref().map(|c| output::parse_context(Some(c))).transpose()?.map(|c| c.to_value()),
                catchup: catchup(policy.as_deref())?,
                max_catchup,
                enabled: paused.then_some(false),
            };
            let schedule = schedules::create(&mut conn, request, now)?.map_err(output::refused)?;
            if json {
                return output::json(&schedule);
            }
            outln!("created schedule {} ({} in {})", schedule.id, schedule.cron_expression, schedule.timezone);
            Ok(())
        }
        SchedulesCommand::Update { id, expression, timezone, context, json } => {
            let id = id_of(&id)?;
            let change = ChangeSchedule {
                expression,
                timezone,
                context: context.as_deref().map(|c| output::parse_context(Some(c))).transpose()?.map(|c| c.to_value()),
                ..ChangeSchedule::default()
            };
            let schedule = schedules::change(&mut conn, id, change, now)?;
            if json {
                return output::json(&schedule);
            }
            outln!("updated schedule {} ({} in {})", schedule.id, schedule.cron_expression, schedule.timezone);
            Ok(())
        }
        SchedulesCommand::Delete { id } => {
            let id = id_of(&id)?;
            if !schedules::delete(&mut conn, id)? {
                return Err(output::fail(output::Failure::NotFound, format!("no cron schedule {id}")));
            }
            outln!("deleted schedule {id}");
            Ok(())
        }
    }
}

fn state(s: &CronSchedule) -> &'static str {
    match (s.enabled, s.next_run_at) {
        (false, _) => "paused",
        (true, None) => "ended",
        (true, Some(_)) => "active",
    }
}
