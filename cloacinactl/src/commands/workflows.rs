//! `cloacinactl workflows list`.

use clap::Subcommand;
use serde_json::json;

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
    match cmd {
        WorkflowsCommand::List { json } => {
            let all = cloacina::ops::workflows::list(&mut conn, super::now())?;
            let versions = all.iter().flat_map(|w| w.versions.iter().map(move |v| (w.name.as_str(), v)));
            if json {
                let rows: Vec<_> = versions
                    .map(|(name, v)| {
                        let workflow = json!({
                            "workflow_name": name,
                            "version": v.version,
                            "graph": v.graph,
                            "first_seen_at": v.first_seen_at,
                            "last_seen_at": v.last_seen_at,
                        });
                        json!({ "workflow": workflow, "live": v.live })
                    })
                    .collect();
                return output::json(&rows);
            }
            let rows: Vec<Vec<String>> = versions
                .map(|(name, v)| {
                    vec![
                        name.to_owned(),
                        v.version.clone(),
                        v.task_count().to_string(),
                        time(v.first_seen_at),
                        time(v.last_seen_at),
                        if v.live { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .collect();
            table(&["WORKFLOW", "VERSION", "TASKS", "FIRST SEEN", "LAST SEEN", "LIVE"], &rows)?;
            Ok(())
        }
    }
}
