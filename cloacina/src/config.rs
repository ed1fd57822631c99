//! [`DefaultRunnerConfig`]: the runner's settings, their defaults, and the bounds
//! [`DefaultRunnerConfig::validate`] holds them to before a runner starts; and
//! [`DefaultRunnerConfigBuilder`], which also takes upstream Cloacina's option names.

use std::time::Duration;

use crate::Error;

/// Runner settings. `Default` gives the documented defaults; [`DefaultRunnerConfig::validate`]
/// (called when a runner is built) refuses values outside the documented bounds.
#[derive(Debug, Clone)]
pub struct DefaultRunnerConfig {
    /// Tasks this runner runs at once (default 16; 1 to 10,000).
    pub max_concurrent_tasks: usize,
    /// Most tasks claimed in one statement (default 32; 1 to 1,000).
    pub claim_batch_size: u32,
    /// How long a claim lasts without renewal (default 30 s; 100 ms to 24 h).
    pub lease_duration: Duration,
    /// How often held leases are renewed (default 10 s; at least 10 ms and less than the lease;
    /// a third of it or less, so one failed renewal does not lose the claim).
    pub heartbeat_interval: Duration,
    /// How often expired leases and stalled pipelines are looked for (default 5 s; 10 ms to 1 h).
    pub recovery_interval: Duration,
    /// Timeout of a task attempt whose task sets none (default 5 min; 1 ms to 365 days).
    pub default_task_timeout: Duration,
    /// How often to look for work created by other processes (default 250 ms; 1 ms to 1 h). Work
    /// created or finished in this process wakes the runner at once.
    pub poll_interval: Duration,
    /// How long `shutdown` lets running tasks finish before it cancels them (default 30 s; at
    /// most 1 h).
    pub shutdown_timeout: Duration,
    /// Database pool size (default 10; 1 to 1,000).
    pub pool_size: u32,
    /// PostgreSQL schema for this runner's tables (a tenant); `None` for the default.
    pub schema: Option<String>,
    /// Name recorded as `claimed_by` (default: host name, process id and a random suffix;
    /// 1 to 200 printable characters). Give every live runner its own name.
    pub runner_name: Option<String>,
    /// Run the cron service (default true). Every runner may run it: the database makes each fire
    /// time start one pipeline.
    pub enable_cron: bool,
    /// A cron fire time handled within this long is on time; older ones were missed and follow
    /// the schedule's catch-up policy (default 60 s; at most 365 days).
    pub cron_late_threshold: Duration,
    /// Longest sleep of the cron service (default 30 s; 10 ms to 1 h), so it sees schedules
    /// changed by other processes. Changes made through this runner wake it at once.
    pub cron_recheck_interval: Duration,
    /// Hand on tasks whose runner stopped renewing their lease, and settle pipelines standing
    /// still (default true). Without it, a crashed runner's tasks wait for a runner that has it.
    pub enable_recovery: bool,
    /// Start fire times that a runner claimed and died before starting (default true).
    pub cron_enable_recovery: bool,
    /// Most missed fire times one schedule runs when it catches up, over every schedule's own
    /// `max_catchup` (default: no runner-wide cap; at least 1).
    pub cron_max_catchup_executions: usize,
    /// Run the event-trigger service (default true): poll the registered triggers whose workflow
    /// this runner has. Every runner may run it: each trigger is polled once per interval across
    /// all of them.
    pub enable_trigger_scheduling: bool,
    /// Delete finished runs (with their tasks, contexts, outputs and recovery events) that ended
    /// longer ago than this, in the background (default `None`: keep every run; at least 1 min).
    /// Running and paused runs are never touched.
    pub retention: Option<Duration>,
    /// How often the retention service looks for runs to delete (default 10 min; 1 s to 1 day).
    pub retention_interval: Duration,
}

impl Default for DefaultRunnerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_tasks: 16,
            claim_batch_size: 32,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            recovery_interval: Duration::from_secs(5),
            default_task_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(30),
            pool_size: 10,
            schema: None,
            runner_name: None,
            enable_cron: true,
            cron_late_threshold: Duration::from_secs(60),
            cron_recheck_interval: Duration::from_secs(30),
            enable_recovery: true,
            cron_enable_recovery: true,
            cron_max_catchup_executions: usize::MAX,
            enable_trigger_scheduling: true,
            retention: None,
            retention_interval: Duration::from_secs(600),
        }
    }
}

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

impl DefaultRunnerConfig {
    /// Checks every setting against its documented bounds; the first one outside them is an
    /// [`Error::InvalidSetting`] naming it.
    pub fn validate(&self) -> Result<(), Error> {
        in_range("max_concurrent_tasks", self.max_concurrent_tasks, 1, 10_000)?;
        in_range("claim_batch_size", self.claim_batch_size, 1, 1_000)?;
        in_range("pool_size", self.pool_size, 1, 1_000)?;
        within("lease_duration", self.lease_duration, 100 * MS, DAY)?;
        within("heartbeat_interval", self.heartbeat_interval, 10 * MS, self.lease_duration)?;
        if self.heartbeat_interval >= self.lease_duration {
            return Err(invalid("heartbeat_interval", "must be shorter than lease_duration"));
        }
        within("recovery_interval", self.recovery_interval, 10 * MS, HOUR)?;
        within("default_task_timeout", self.default_task_timeout, MS, YEAR)?;
        within("poll_interval", self.poll_interval, MS, HOUR)?;
        within("shutdown_timeout", self.shutdown_timeout, Duration::ZERO, HOUR)?;
        within("cron_late_threshold", self.cron_late_threshold, Duration::ZERO, YEAR)?;
        within("cron_recheck_interval", self.cron_recheck_interval, 10 * MS, HOUR)?;
        in_range("cron_max_catchup_executions", self.cron_max_catchup_executions, 1, usize::MAX)?;
        if let Some(keep) = self.retention {
            within("retention", keep, 60 * SECOND, 100 * YEAR)?;
        }
        within("retention_interval", self.retention_interval, SECOND, DAY)?;
        if let Some(name) = &self.runner_name {
            let printable = !name.chars().any(char::is_control);
            if name.trim().is_empty() || name.chars().count() > 200 || !printable {
                return Err(invalid("runner_name", "must be 1 to 200 printable characters"));
            }
        }
        if self.heartbeat_interval * 3 > self.lease_duration {
            tracing::warn!(
                heartbeat = ?self.heartbeat_interval,
                lease = ?self.lease_duration,
                "heartbeat_interval is more than a third of lease_duration: one failed renewal may lose a claim"
            );
        }
        Ok(())
    }
}

/// Builds a [`DefaultRunnerConfig`] from the defaults (upstream Cloacina's
/// `DefaultRunnerConfig::builder()`); [`build`](Self::build) validates. Each setting has a method
/// of its own name, and upstream's names are accepted for the settings they mean:
/// `scheduler_poll_interval` (= `poll_interval`), `task_timeout` (= `default_task_timeout`),
/// `db_pool_size` (= `pool_size`), `enable_cron_scheduling` (= `enable_cron`),
/// `cron_poll_interval` (= `cron_recheck_interval`).
#[derive(Debug, Clone, Default)]
pub struct DefaultRunnerConfigBuilder {
    config: DefaultRunnerConfig,
}

/// A builder setter per `method: type => field`.
macro_rules! settings {
    ($($method:ident: $ty:ty => $field:ident),* $(,)?) => {
        impl DefaultRunnerConfigBuilder {
            $(
                #[doc = concat!("Sets `", stringify!($field), "`.")]
                pub fn $method(mut self, value: $ty) -> Self {
                    self.config.$field = value;
                    self
                }
            )*
        }
    };
}

settings! {
    max_concurrent_tasks: usize => max_concurrent_tasks,
    claim_batch_size: u32 => claim_batch_size,
    lease_duration: Duration => lease_duration,
    heartbeat_interval: Duration => heartbeat_interval,
    recovery_interval: Duration => recovery_interval,
    default_task_timeout: Duration => default_task_timeout,
    task_timeout: Duration => default_task_timeout,
    poll_interval: Duration => poll_interval,
    scheduler_poll_interval: Duration => poll_interval,
    shutdown_timeout: Duration => shutdown_timeout,
    pool_size: u32 => pool_size,
    db_pool_size: u32 => pool_size,
    schema: Option<String> => schema,
    runner_name: Option<String> => runner_name,
    enable_cron: bool => enable_cron,
    enable_cron_scheduling: bool => enable_cron,
    cron_late_threshold: Duration => cron_late_threshold,
    cron_recheck_interval: Duration => cron_recheck_interval,
    cron_poll_interval: Duration => cron_recheck_interval,
    enable_recovery: bool => enable_recovery,
    cron_enable_recovery: bool => cron_enable_recovery,
    cron_max_catchup_executions: usize => cron_max_catchup_executions,
    enable_trigger_scheduling: bool => enable_trigger_scheduling,
    retention: Option<Duration> => retention,
    retention_interval: Duration => retention_interval,
}

/// Upstream settings whose work this engine does another way: accepted, so that a program that
/// sets them builds and runs, and mapped as their documentation says.
impl DefaultRunnerConfigBuilder {
    /// Upstream's interval for recovering lost cron executions. A cron fire and its run commit
    /// together here (ADR 0002), so no cron execution is ever lost between them; the runs it
    /// started are recovered like any others, by lease recovery: this sets `recovery_interval`.
    pub fn cron_recovery_interval(mut self, value: Duration) -> Self {
        self.config.recovery_interval = value;
        self
    }

    /// Upstream's base tick of its trigger scheduler. Each event trigger here is polled on its
    /// own `poll_interval` (one poll per interval across runners), so there is no base tick: the
    /// value is accepted and has no effect.
    pub fn trigger_base_poll_interval(self, _value: Duration) -> Self {
        self
    }

    /// Upstream's switch for the registry reconciler, which loads packages stored in the
    /// database into a runner. A `DefaultRunner` runs the workflows it is built with; packages are
    /// loaded by the daemon (`cloacinactl daemon`, `cloacina::packages`): accepted, no effect.
    pub fn enable_registry_reconciler(self, _value: bool) -> Self {
        self
    }
}

impl DefaultRunnerConfigBuilder {
    /// The settings, checked ([`DefaultRunnerConfig::validate`]).
    pub fn build(self) -> Result<DefaultRunnerConfig, Error> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl DefaultRunnerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> DefaultRunnerConfigBuilder {
        DefaultRunnerConfigBuilder::default()
    }

    /// `default_task_timeout`, by upstream's name.
    pub fn task_timeout(&self) -> Duration {
        self.default_task_timeout
    }

    /// `poll_interval`, by upstream's name.
    pub fn scheduler_poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// `pool_size`, by upstream's name.
    pub fn db_pool_size(&self) -> u32 {
        self.pool_size
    }

    /// `enable_cron`, by upstream's name.
    pub fn enable_cron_scheduling(&self) -> bool {
        self.enable_cron
    }

    /// `cron_recheck_interval`, by upstream's name.
    pub fn cron_poll_interval(&self) -> Duration {
        self.cron_recheck_interval
    }
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidSetting { setting, reason: reason.into() }
}

fn in_range<T: PartialOrd + std::fmt::Display>(setting: &'static str, value: T, min: T, max: T) -> Result<(), Error> {
    if value < min || value > max {
        return Err(invalid(setting, format!("is {value}; must be between {min} and {max}")));
    }
    Ok(())
}

fn within(setting: &'static str, value: Duration, min: Duration, max: Duration) -> Result<(), Error> {
    if value < min || value > max {
        return Err(invalid(setting, format!("is {value:?}; must be between {min:?} and {max:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        DefaultRunnerConfig::default().validate().expect("defaults");
    }

    #[test]
    fn upstreams_settings_of_other_machinery_are_accepted_and_mapped() {
        let config = DefaultRunnerConfig::builder()
            .cron_recovery_interval(Duration::from_secs(7))
            .trigger_base_poll_interval(Duration::from_secs(1))
            .enable_registry_reconciler(true)
            .build()
            .expect("valid");
        let defaults = DefaultRunnerConfig::default();
        assert_eq!(config.recovery_interval, Duration::from_secs(7));
        assert_eq!(
            (config.poll_interval, config.enable_trigger_scheduling),
            (defaults.poll_interval, defaults.enable_trigger_scheduling)
        );
        let refused = DefaultRunnerConfig::builder().cron_recovery_interval(Duration::ZERO).build();
        assert!(matches!(refused, Err(Error::InvalidSetting { setting: "recovery_interval", .. })));
    }

    #[test]
    fn the_builder_takes_upstreams_names_and_validates() {
        let config = DefaultRunnerConfig::builder()
            .max_concurrent_tasks(8)
            .task_timeout(Duration::from_secs(600))
            .scheduler_poll_interval(Duration::from_millis(100))
            .db_pool_size(4)
            .enable_cron_scheduling(false)
            .cron_poll_interval(Duration::from_secs(5))
            .cron_max_catchup_executions(2)
            .enable_recovery(false)
            .build()
            .expect("valid");
        assert_eq!(config.max_concurrent_tasks, 8);
        assert_eq!(
            (config.default_task_timeout, config.task_timeout()),
            (Duration::from_secs(600), Duration::from_secs(600))
        );
        assert_eq!(config.scheduler_poll_interval(), Duration::from_millis(100));
        assert_eq!((config.pool_size, config.db_pool_size()), (4, 4));
        assert!(!config.enable_cron && !config.enable_cron_scheduling() && !config.enable_recovery);
        assert_eq!(config.cron_poll_interval(), Duration::from_secs(5));
        assert_eq!(config.cron_max_catchup_executions, 2);
        let err = DefaultRunnerConfig::builder().max_concurrent_tasks(0).build().expect_err("out of range");
        assert!(matches!(err, Error::InvalidSetting { setting: "max_concurrent_tasks", .. }), "{err}");
    }

    #[test]
    fn every_out_of_range_setting_is_named() {
        let base = DefaultRunnerConfig::default;
        let cases: Vec<(&str, DefaultRunnerConfig)> = vec![
            ("max_concurrent_tasks", DefaultRunnerConfig { max_concurrent_tasks: 0, ..base() }),
            ("max_concurrent_tasks", DefaultRunnerConfig { max_concurrent_tasks: usize::MAX, ..base() }),
            ("claim_batch_size", DefaultRunnerConfig { claim_batch_size: 0, ..base() }),
            ("pool_size", DefaultRunnerConfig { pool_size: 0, ..base() }),
            ("lease_duration", DefaultRunnerConfig { lease_duration: Duration::MAX, ..base() }),
            ("heartbeat_interval", DefaultRunnerConfig { heartbeat_interval: Duration::ZERO, ..base() }),
            ("heartbeat_interval", DefaultRunnerConfig { heartbeat_interval: Duration::from_secs(30), ..base() }),
            ("recovery_interval", DefaultRunnerConfig { recovery_interval: Duration::ZERO, ..base() }),
            ("default_task_timeout", DefaultRunnerConfig { default_task_timeout: Duration::MAX, ..base() }),
            ("poll_interval", DefaultRunnerConfig { poll_interval: Duration::ZERO, ..base() }),
            ("shutdown_timeout", DefaultRunnerConfig { shutdown_timeout: Duration::MAX, ..base() }),
            ("cron_recheck_interval", DefaultRunnerConfig { cron_recheck_interval: Duration::ZERO, ..base() }),
            ("runner_name", DefaultRunnerConfig { runner_name: Some(" ".into()), ..base() }),
            ("runner_name", DefaultRunnerConfig { runner_name: Some("a\nb".into()), ..base() }),
            ("cron_max_catchup_executions", DefaultRunnerConfig { cron_max_catchup_executions: 0, ..base() }),
        ];
        for (setting, config) in cases {
            let err = config.validate().expect_err(setting);
            assert!(matches!(&err, Error::InvalidSetting { setting: s, .. } if *s == setting), "{setting}: {err}");
            assert!(err.to_string().contains(setting), "{err}");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        }
    }
}
