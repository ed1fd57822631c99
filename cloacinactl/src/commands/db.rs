//! `cloacinactl db migrate`, `db status` and `db copy`.

use std::io::IsTerminal;

use clap::Subcommand;
use cloacina::ops::copy::{self, CopyError, CopyOptions, Progress};
use cloacina::ops::database;

use super::output::{self, fail, outln, table, Failure};
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
    /// Copy every table of one database into another, empty and migrated one (SQLite to
    /// PostgreSQL, PostgreSQL to SQLite, schema to schema, or SQLite to a compacted SQLite
    /// file): one snapshot of the source, one transaction on the target, verified before it
    /// commits. The source is only read.
    Copy {
        /// The database to copy from.
        #[arg(long, value_name = "URL")]
        from: String,
        /// PostgreSQL schema of the source.
        #[arg(long, value_name = "SCHEMA")]
        from_schema: Option<String>,
        /// The database to copy into (migrate it first with `db migrate`).
        #[arg(long, value_name = "URL")]
        to: String,
        /// PostgreSQL schema of the target.
        #[arg(long, value_name = "SCHEMA")]
        to_schema: Option<String>,
        /// Copy even though the source shows a live runner (work it does meanwhile is not copied).
        #[arg(long)]
        force: bool,
        /// Print a JSON summary instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(target: &Target, cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Migrate => migrate_cmd(target),
        DbCommand::Status { json } => status_cmd(target, json),
        DbCommand::Copy { from, from_schema, to, to_schema, force, json } => {
            let source = Target { url: Some(from), schema: from_schema };
            let target = Target { url: Some(to), schema: to_schema };
            copy_cmd(&source, &target, force, json)
        }
    }
}

fn copy_cmd(source: &Target, target: &Target, force: bool, json: bool) -> anyhow::Result<()> {
    let (from, mut src) = source.connect()?;
    let (to, mut dst) = target.connect()?;
    if from.redacted() == to.redacted() && source.schema == target.schema {
        return Err(fail(Failure::BadInput, "--from and --to are the same database"));
    }
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({per_sec}, eta {eta}) {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut show = |p: Progress| {
        if let Some(bar) = &bar {
            bar.set_length(p.total_all);
            bar.set_position(p.copied_all);
            bar.set_message(p.table);
        }
    };
    let result = copy::copy(&mut src, &mut dst, CopyOptions { force }, super::now(), &mut show);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result.map_err(|e| match e {
        CopyError::Database(e) => anyhow::Error::from(e),
        CopyError::LiveRunner(_) => fail(Failure::Conflict, format!("{e} (--force)")),
        CopyError::TargetNotEmpty { .. } | CopyError::SchemaMismatch { .. } => fail(Failure::Conflict, e.to_string()),
        other => fail(Failure::BadInput, other.to_string()),
    })?;
    let secs = report.elapsed.as_secs_f64().max(1e-3);
    if json {
        return output::json(&serde_json::json!({
            "from": from.redacted(),
            "to": to.redacted(),
            "tables": report.tables,
            "rows": report.rows,
            "duration_ms": u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            "verified": true,
        }));
    }
    let rows: Vec<Vec<String>> =
        report.tables.iter().map(|t| vec![t.table.to_owned(), t.rows.to_string(), t.checksum.clone()]).collect();
    table(&["TABLE", "ROWS", "CHECKSUM"], &rows)?;
    outln!(
        "copied {} rows from {} to {} in {:.1} s ({:.0} rows/s); counts and checksums verified on the target",
        report.rows,
        from.redacted(),
        to.redacted(),
        secs,
        report.rows as f64 / secs
    );
    Ok(())
}

fn migrate_cmd(target: &Target) -> anyhow::Result<()> {
    let (url, mut conn) = target.connect_or_create()?;
    let applied = database::migrate(&mut conn, target.schema.as_deref())?;
    for step in &applied {
        outln!("applied {} in {} ms", step.version, step.took.as_millis());
    }
    if applied.is_empty() {
        outln!("{url}: up to date");
    } else {
        outln!("{url}: applied {} migration(s)", applied.len());
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
    let status = database::status(&mut conn, true)?;
    let rows = status.rows.map(|counts| counts.into_iter().map(|(t, n)| (t.to_owned(), n.into())).collect());
    let report = Status {
        backend: status.backend,
        database: url.redacted(),
        schema: target.schema.clone(),
        applied: status.applied,
        pending: status.pending,
        rows,
    };
    if json {
        return output::json(&report);
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
