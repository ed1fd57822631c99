//! `cloacinactl workflows list`.

use clap::Subcommand;
use cloacina::dal::workflow_registry;

use super::output::{self, table, time};
use super::Target;

/// `workflows` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowsCommand {
    /// List the workflow versions runners have registered, and whether a live runner has each.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(target: &Target, cmd: WorkflowsCommand) -> anyhow::Result<()> {
    let mut conn = target.connect_migrated()?;
    let now = chrono::Utc::now();
    match cmd {
        WorkflowsCommand::List { json } => {
            let all = workflow_registry::list(&mut conn)?;
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(|w| serde_json::json!({ "workflow": w, "live": cloacina::admin::is_live(w, now) }))
                    .collect();
                return output::json(&rows);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|w| {
                    let tasks = w.graph.get("tasks").and_then(|t| t.as_array()).map_or(0, Vec::len);
                    vec![
                        w.workflow_name.clone(),
                        w.version.clone(),
                        tasks.to_string(),
                        time(w.first_seen_at),
                        time(w.last_seen_at),
                        if cloacina::admin::is_live(w, now) { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            table(&["WORKFLOW", "VERSION", "TASKS", "FIRST SEEN", "LAST SEEN", "LIVE"], &rows)?;
            Ok(())
        }
    }
}
