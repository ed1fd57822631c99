//! `cloacinactl`: the operator CLI for Cloacina databases, runs, schedules and the workflow registry. Thin: parses arguments and hands each
//! command to its module under `commands/`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate Cloacina databases.
#[derive(Debug, Parser)]
#[command(name = "cloacinactl", version, about)]
struct Cli {
    /// Database URL: postgres://…, sqlite://path, sqlite::memory:, or a file path.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// PostgreSQL schema holding Cloacina's tables (a tenant); PostgreSQL only.
    #[arg(long, global = true, env = "CLOACINA_SCHEMA")]
    schema: Option<String>,

    /// Log format on standard error (levels from RUST_LOG; default: info for `serve`, warn
    /// otherwise).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Installs a subscriber honouring `RUST_LOG`, writing to standard error.
fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Database schema management.
    #[command(subcommand)]
    Db(commands::db::DbCommand),
    /// Workflow runs (pipeline executions).
    #[command(subcommand)]
    Runs(commands::runs::RunsCommand),
    /// Cron schedules.
    #[command(subcommand)]
    Schedules(commands::schedules::SchedulesCommand),
    /// The workflow registry.
    #[command(subcommand)]
    Workflows(commands::workflows::WorkflowsCommand),
    /// Serve the HTTP API over the database (until SIGINT or SIGTERM).
    Serve(commands::serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" });
    let target = commands::Target { url: cli.database_url, schema: cli.schema };
    let result = match cli.command {
        Command::Db(cmd) => commands::db::run(&target, cmd),
        Command::Runs(cmd) => commands::runs::run(&target, cmd),
        Command::Schedules(cmd) => commands::schedules::run(&target, cmd),
        Command::Workflows(cmd) => commands::workflows::run(&target, cmd),
        Command::Serve(args) => commands::serve::run(&target, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain; messages from the library never contain a password.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
