//! `cloacinactl db migrate` and `cloacinactl db status`.

use clap::Subcommand;
use cloacina::database::migrate;

use super::output::outln;
use super::Target;

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Apply pending migrations (safe to run while runners start; migrators take turns).
    Migrate,
    /// Show the backend, applied and pending migrations, and row counts per table.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(target: &Target, cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Migrate => migrate_cmd(target),
        DbCommand::Status { json } => status_cmd(target, json),
    }
}

fn migrate_cmd(target: &Target) -> anyhow::Result<()> {
    let (url, mut conn) = target.connect()?;
    let applied = migrate::run_pending(&mut conn, target.schema.as_deref())?;
    if applied.is_empty() {
        outln!("{url}: up to date");
    } else {
        outln!("{url}: applied {} migration(s): {}", applied.len(), applied.join(", "));
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct Status {
    backend: cloacina::Backend,
    database: String,
    schema: Option<String>,
    applied: Vec<String>,
    pending: Vec<String>,
    /// Row counts per table; absent until the schema is fully migrated.
    rows: Option<serde_json::Map<String, serde_json::Value>>,
}

fn status_cmd(target: &Target, json: bool) -> anyhow::Result<()> {
    let (url, mut conn) = target.connect()?;
    let status = migrate::status(&mut conn)?;
    let rows = if status.pending.is_empty() {
        let counts = cloacina::dal::row_counts(&mut conn)?;
        Some(counts.into_iter().map(|(t, n)| (t.to_owned(), n.into())).collect())
    } else {
        None
    };
    let report = Status {
        backend: status.backend,
        database: url.redacted(),
        schema: target.schema.clone(),
        applied: status.applied,
        pending: status.pending,
        rows,
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    outln!("backend     {}", report.backend);
    outln!("database    {}", report.database);
    outln!("schema      {}", report.schema.as_deref().unwrap_or("(default)"));
    outln!("migrations  {} applied, {} pending", report.applied.len(), report.pending.len());
    for v in &report.applied {
        outln!("  applied   {v}");
    }
    for v in &report.pending {
        outln!("  pending   {v}  (run `cloacinactl db migrate`)");
    }
    if let Some(rows) = &report.rows {
        outln!("rows");
        for (table, n) in rows {
            outln!("  {table:<24} {n:>10}");
        }
    }
    Ok(())
}
