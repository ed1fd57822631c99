//! `cloacinactl daemon`: a runner whose workflows come from `.cloacina` packages in watched
//! directories (`cloacina::packages::daemon`), until SIGINT or SIGTERM. `serve`'s workers use the
//! same runner settings ([`WorkerArgs`]) and the same daemon, fed by the database.

use std::path::PathBuf;
use std::time::Duration;

use cloacina::packages::daemon::{Daemon, DEFAULT_POLL_INTERVAL};
use cloacina::packages::python::PythonHost;
use cloacina::packages::{Limits, Loader};
use cloacina::runner::{DefaultRunner, DefaultRunnerConfig};

use super::Target;

/// `daemon` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct DaemonArgs {
    /// A directory of `.cloacina` archives to load and watch (repeatable; created if missing).
    /// Default: ~/.cloacina/packages.
    #[arg(long = "packages", visible_alias = "watch-dir")]
    packages: Vec<PathBuf>,
    /// Load the packages, run every unfinished run of their workflows, and exit.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    worker: WorkerArgs,
}

/// The settings of a process that runs packaged workflows (`daemon`, `serve`'s workers).
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// Seconds between looks for new, changed or removed packages.
    #[arg(long, default_value_t = DEFAULT_POLL_INTERVAL.as_secs_f64())]
    poll_interval: f64,
    /// Bytes an archive may expand to when unpacked (guards against compression bombs).
    #[arg(long, default_value_t = Limits::DEFAULT_UNPACKED_BYTES)]
    pub(crate) max_unpacked_bytes: u64,
    /// Tasks run at once at most.
    #[arg(long, default_value_t = DefaultRunnerConfig::default().max_concurrent_tasks)]
    max_concurrent_tasks: usize,
    /// Seconds a claim on a task lasts without renewal; another runner takes the task over
    /// after it lapses (the heartbeat renews it every third of it).
    #[arg(long, default_value_t = DefaultRunnerConfig::default().lease_duration.as_secs_f64())]
    lease_duration: f64,
    /// Seconds a graceful stop lets running tasks finish before cancelling them.
    #[arg(long, default_value_t = DefaultRunnerConfig::default().shutdown_timeout.as_secs_f64())]
    shutdown_timeout: f64,
    /// The name this process claims tasks under (default: host and process id).
    #[arg(long)]
    runner_name: Option<String>,
}

impl WorkerArgs {
    /// The interval between looks for package changes.
    pub(crate) fn interval(&self) -> Duration {
        seconds(self.poll_interval).max(Duration::from_millis(10))
    }

    /// The loader these settings describe (its cache and work directories from the environment).
    pub(crate) fn loader(&self) -> Loader {
        let mut loader = Loader::from_env();
        loader.limits.unpacked_bytes = self.max_unpacked_bytes;
        loader
    }

    /// Starts a runner on `url` (tenant `schema`) and a daemon over it watching `dirs`.
    pub(crate) async fn start(&self, url: &str, schema: Option<String>, dirs: Vec<PathBuf>) -> anyhow::Result<Daemon> {
        let lease = seconds(self.lease_duration);
        let config = DefaultRunnerConfig::builder()
            .max_concurrent_tasks(self.max_concurrent_tasks)
            .lease_duration(lease)
            .heartbeat_interval(lease / 3)
            .shutdown_timeout(seconds(self.shutdown_timeout))
            .runner_name(self.runner_name.clone())
            .schema(schema.clone())
            .build()?;
        let loader = self.loader();
        let python = PythonHost::from_env(url, schema, loader.compiler.cache_dir.join("python"));
        let runner = DefaultRunner::with_config(url, config).await?;
        Ok(Daemon::new(runner, loader, python, dirs)?)
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// `~/.cloacina/<leaf>`, upstream's default home.
fn home(leaf: &str) -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".cloacina").join(leaf)
}

pub(crate) fn run(target: &Target, args: DaemonArgs) -> anyhow::Result<()> {
    let url = match &target.url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", home("cloacina.db").display()),
    };
    let dirs = if args.packages.is_empty() { vec![home("packages")] } else { args.packages };
    let interval = args.worker.interval();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        if let Some(parent) =
            url.strip_prefix("sqlite://").map(PathBuf::from).and_then(|p| p.parent().map(PathBuf::from))
        {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(&parent)?;
            }
        }
        let mut daemon = args.worker.start(&url, target.schema.clone(), dirs).await?;
        if args.once {
            let scan = daemon.run_once(interval).await?;
            if !scan.failed.is_empty() {
                anyhow::bail!("{} package(s) failed to load", scan.failed.len());
            }
            return Ok(());
        }
        daemon.watch(interval, cloacina_server::shutdown_signal()).await;
        daemon.shutdown().await?;
        Ok(())
    })
}
