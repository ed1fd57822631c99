//! `cloacinactl`: the operator CLI for Cloacina databases, runs, schedules, the workflow registry,
//! workflow packages and the daemon that runs them. Thin: parses arguments and hands each
//! command to its module under `commands/`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Operate Cloacina databases.
#[derive(Debug, Parser)]
#[command(name = "cloacinactl", version, long_version = long_version(), about)]
struct Cli {
    /// Database URL: postgres://…, sqlite://path, sqlite::memory:, or a file path.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// PostgreSQL schema holding Cloacina's tables (a tenant); PostgreSQL only.
    #[arg(long, global = true, env = "CLOACINA_SCHEMA")]
    schema: Option<String>,

    /// Show times in UTC instead of local time.
    #[arg(long, global = true)]
    utc: bool,

    /// Log format on standard error (levels from RUST_LOG; default: info for `serve` and `daemon`, warn
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
    /// Workflow packages: scaffold, validate, build, pack, inspect; list those in the database.
    #[command(subcommand)]
    Package(commands::package::PackageCommand),
    /// Package signing keys (Ed25519): `generate --out KEY` writes KEY (the private key, mode
    /// 0600) and KEY.pub (what a server trusts with --trusted-key).
    #[command(subcommand)]
    SigningKey(commands::package::SigningKeyCommand),
    /// Run the workflows of the `.cloacina` packages in watched directories (until SIGINT or
    /// SIGTERM, or with --once until their runs are done). Default database:
    /// sqlite://~/.cloacina/cloacina.db.
    Daemon(commands::daemon::DaemonArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `--version`: the version, the backends compiled in, and the schema version it migrates to.
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let compiled: Vec<cloacina::Backend> = cloacina::Backend::ALL.into_iter().filter(|b| b.is_compiled()).collect();
        let backends: Vec<&str> = compiled.iter().map(|b| b.name()).collect();
        let backend = compiled.first().copied().unwrap_or(cloacina::Backend::Sqlite);
        let schema = cloacina::ops::database::known_versions(backend)
            .ok()
            .and_then(|v| v.last().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        format!("{}\nbackends: {}\nschema: {schema}", env!("CARGO_PKG_VERSION"), backends.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::output::use_utc(cli.utc);
    let long_running = matches!(cli.command, Command::Serve(_) | Command::Daemon(_));
    init_logging(cli.log_format, if long_running { "info" } else { "warn" });
    let target = commands::Target { url: cli.database_url, schema: cli.schema };
    let result = match cli.command {
        Command::Db(cmd) => commands::db::run(&target, cmd),
        Command::Runs(cmd) => commands::runs::run(&target, cmd),
        Command::Schedules(cmd) => commands::schedules::run(&target, cmd),
        Command::Workflows(cmd) => commands::workflows::run(&target, cmd),
        Command::Serve(args) => commands::serve::run(&target, args),
        Command::Package(cmd) => commands::package::run(&target, cmd),
        Command::SigningKey(cmd) => commands::package::signing_key(cmd),
        Command::Daemon(args) => commands::daemon::run(&target, args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cloacinactl", &mut out);
            commands::output::line(String::from_utf8_lossy(&out).trim_end())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `cloacinactl runs list | head`: the reader left; that is not an error.
        Err(e) if commands::output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain; messages from the library never contain a password.
            eprintln!("error: {}", commands::output::printable(&format!("{e:#}")));
            ExitCode::from(commands::output::exit_code(&e))
        }
    }
}
