//! `cloacinactl schedules list|show|pause|resume|delete`.

use clap::Subcommand;
use cloacina::cron;
use cloacina::dal::{cron_executions, cron_schedules};
use cloacina::models::{CronSchedule, CronScheduleId};

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
}

pub(crate) fn run(target: &Target, cmd: SchedulesCommand) -> anyhow::Result<()> {
    let mut conn = target.connect_migrated()?;
    let now = chrono::Utc::now();
    let id_of = |s: &str| parse_id::<CronScheduleId>("schedule", s);
    match cmd {
        SchedulesCommand::List { json } => {
            let all = cron_schedules::list(&mut conn)?;
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
            table(&["ID", "WORKFLOW", "CRON", "TIME ZONE", "STATE", "CATCH-UP", "NEXT (UTC)", "LAST (UTC)"], &rows);
            Ok(())
        }
        SchedulesCommand::Show { id, count, json } => {
            let schedule = cron::get(&mut conn, id_of(&id)?)?;
            let upcoming = cron::upcoming(&schedule, count as usize, now)?;
            let history = cron_executions::list_for_schedule(&mut conn, schedule.id, count, 0)?;
            if json {
                let doc = serde_json::json!({ "schedule": schedule, "upcoming": upcoming, "recent": history });
                return output::json(&doc);
            }
            println!("schedule   {}", schedule.id);
            println!("workflow   {}", schedule.workflow_name);
            println!("cron       {} ({})", schedule.cron_expression, schedule.timezone);
            println!("state      {}", state(&schedule));
            println!("catch-up   {} (at most {})", schedule.catchup_policy.as_str(), schedule.max_catchup);
            println!("window     {} .. {}", maybe_time(schedule.start_at), maybe_time(schedule.end_at));
            println!("context    {}", schedule.context);
            let label = if schedule.enabled { "next fire times" } else { "next fire times if resumed now" };
            println!("\n{label} (UTC)");
            for t in upcoming {
                println!("  {}", time(t));
            }
            println!("\nrecent fire times");
            let rows: Vec<Vec<String>> = history
                .iter()
                .map(|f| {
                    let run =
                        f.pipeline_execution_id.map_or_else(|| "(claimed, not started)".to_owned(), |p| p.to_string());
                    vec![time(f.scheduled_time), run, f.claimed_by.clone()]
                })
                .collect();
            table(&["FIRE TIME (UTC)", "RUN", "RUNNER"], &rows);
            Ok(())
        }
        SchedulesCommand::Pause { id } => {
            let id = id_of(&id)?;
            let changed = cron::pause(&mut conn, id, now)?;
            println!(
                "{}",
                if changed { format!("paused schedule {id}") } else { format!("schedule {id} was already paused") }
            );
            Ok(())
        }
        SchedulesCommand::Resume { id } => {
            let id = id_of(&id)?;
            let changed = cron::resume(&mut conn, id, now)?;
            println!(
                "{}",
                if changed { format!("resumed schedule {id}") } else { format!("schedule {id} was not paused") }
            );
            Ok(())
        }
        SchedulesCommand::Delete { id } => {
            let id = id_of(&id)?;
            if !cron::delete(&mut conn, id)? {
                anyhow::bail!("no cron schedule {id}");
            }
            println!("deleted schedule {id}");
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
