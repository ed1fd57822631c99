//! Records the DAL returns: plain Rust with typed ids, statuses and `chrono` times.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;

/// One run of a workflow.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PipelineExecution {
    /// Its id.
    pub id: PipelineExecutionId,
    /// The workflow it runs.
    pub workflow_name: String,
    /// The workflow version (structural hash) it started with.
    pub workflow_version: String,
    /// Where it stands.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::openapi::pipeline_status))]
    pub status: PipelineStatus,
    /// Its input context.
    pub context_id: Option<ContextId>,
    /// Its final context, once completed.
    pub final_context_id: Option<ContextId>,
    /// Why it failed, if it did.
    pub error_details: Option<String>,
    /// When its first task was claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub completed_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One task of one pipeline execution.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskExecution {
    /// Its id.
    pub id: TaskExecutionId,
    /// The pipeline it belongs to.
    pub pipeline_execution_id: PipelineExecutionId,
    /// The task's id within its workflow.
    pub task_name: String,
    /// Where it stands.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::openapi::task_status))]
    pub status: TaskStatus,
    /// The current attempt, from 1.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// For a waiting retry: when it becomes claimable.
    pub retry_at: Option<DateTime<Utc>>,
    /// The runner holding the claim, while Running.
    pub claimed_by: Option<String>,
    /// When the claim lapses unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// When the current (or last) attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal status.
    pub completed_at: Option<DateTime<Utc>>,
    /// The last error, if any.
    pub error_details: Option<String>,
    /// Trigger rules, as the engine serialised them (JSON text).
    pub trigger_rules: String,
    /// Task configuration (retry policy, timeout), as the engine serialised it (JSON text).
    pub task_configuration: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A decision recovery made about a task whose lease expired.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecoveryEvent {
    /// Its id.
    pub id: RecoveryEventId,
    /// The pipeline concerned.
    pub pipeline_execution_id: PipelineExecutionId,
    /// The task concerned, if any.
    pub task_execution_id: Option<TaskExecutionId>,
    /// What was done (`task_requeued`, `task_failed`).
    pub recovery_type: String,
    /// Details (previous claimant, attempt).
    pub details: Option<Value>,
    /// When it was decided.
    pub recovered_at: DateTime<Utc>,
}

/// A running runner process, as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunnerProcess {
    /// Its name (the `claimed_by` of the tasks it runs).
    pub runner_name: String,
    /// The machine it runs on: the kernel's boot id (shared by every container of one machine),
    /// or the host name where there is none.
    pub host_id: String,
    /// The host name, for people.
    pub host_name: String,
    /// Its process id.
    pub pid: u32,
    /// When it started (registered).
    pub started_at: DateTime<Utc>,
    /// When it last said it was alive.
    pub last_seen_at: DateTime<Utc>,
    /// The workflow versions it runs and starts new runs at.
    pub workflow_versions: Vec<String>,
    /// Versions it still runs for the runs in flight but starts no new runs of (a package that
    /// was replaced or removed).
    pub retired_versions: Vec<String>,
}

/// How one attempt of a task ended (or that it has not).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// It completed the task.
    Completed,
    /// It is running now.
    Running,
    /// It failed with an error the task's retry policy retries: another attempt follows.
    Retried,
    /// It failed the task: the error is not retried, or no attempt was left.
    Failed,
    /// Its runner gave it back cut short (a graceful shutdown's deadline, say); it was not charged.
    Released,
    /// Its runner stopped renewing the lease; recovery requeued or failed the task.
    LeaseExpired,
}

impl AttemptOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [AttemptOutcome; 6] = [
        AttemptOutcome::Completed,
        AttemptOutcome::Running,
        AttemptOutcome::Retried,
        AttemptOutcome::Failed,
        AttemptOutcome::Released,
        AttemptOutcome::LeaseExpired,
    ];

    /// The stored (and JSON) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Running => "running",
            AttemptOutcome::Retried => "retried",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Released => "released",
            AttemptOutcome::LeaseExpired => "lease_expired",
        }
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttemptOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|o| o.as_str() == text).ok_or_else(|| format!("unknown attempt outcome {text:?}"))
    }
}

/// One attempt of a task: who ran it, when, and how it ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TaskAttempt {
    /// The task.
    pub task_execution_id: TaskExecutionId,
    /// Its number, from 1 (a given-back attempt has its own number too).
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The runner that ran it, when known.
    pub runner: Option<String>,
    /// Its error (or why it was given back), if any.
    pub error_details: Option<String>,
    /// When it started, when known.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended (none while running).
    pub ended_at: Option<DateTime<Utc>>,
}

/// A workflow definition some runner has registered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegisteredWorkflow {
    /// Its id.
    pub id: WorkflowRegistryId,
    /// Workflow name.
    pub workflow_name: String,
    /// Structural version (content hash).
    pub version: String,
    /// The task graph as JSON.
    pub graph: Value,
    /// First registration.
    pub first_seen_at: DateTime<Utc>,
    /// Latest registration or refresh by a running runner.
    pub last_seen_at: DateTime<Utc>,
}

/// A packaged workflow archive a daemon or server loaded (its bytes are read separately:
/// `ops::packages::archive`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkflowPackage {
    /// Its id.
    pub id: WorkflowPackageId,
    /// Package name (`[package] name` of its manifest).
    pub package_name: String,
    /// Package version (`[package] version`).
    pub version: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Hex SHA-256 of the archive.
    pub content_sha256: String,
    /// The manifest and what the package holds (language, workflows, tasks, triggers).
    pub metadata: Value,
    /// Whether its load worked.
    pub status: PackageStatus,
    /// Why the load failed (for `failed`).
    pub error: Option<String>,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// Where a package stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    /// Uploaded to a server and stored; no worker has loaded it yet.
    Uploaded,
    /// Loaded: its workflows run and new runs start at them.
    Loaded,
    /// Its load failed (a bad archive, a build error): nothing of it runs.
    Failed,
    /// Its archive was taken away: its workflows start no new runs; runs in flight finish.
    Removed,
}

impl PackageStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageStatus::Uploaded => "uploaded",
            PackageStatus::Loaded => "loaded",
            PackageStatus::Failed => "failed",
            PackageStatus::Removed => "removed",
        }
    }
}

impl std::str::FromStr for PackageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uploaded" => Ok(PackageStatus::Uploaded),
            "loaded" => Ok(PackageStatus::Loaded),
            "failed" => Ok(PackageStatus::Failed),
            "removed" => Ok(PackageStatus::Removed),
            other => Err(format!("unknown package status `{other}`")),
        }
    }
}

impl std::fmt::Display for PackageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a schedule does about fire times missed while no runner was up.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchupPolicy {
    /// Only the next future fire time runs.
    Skip,
    /// One run for any number of missed times.
    RunOnce,
    /// Every missed time runs, up to the schedule's maximum.
    RunAll,
}

impl CatchupPolicy {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchupPolicy::Skip => "skip",
            CatchupPolicy::RunOnce => "run_once",
            CatchupPolicy::RunAll => "run_all",
        }
    }
}

impl std::str::FromStr for CatchupPolicy {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "run_once" => Ok(Self::RunOnce),
            "run_all" => Ok(Self::RunAll),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

/// A cron schedule.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CronSchedule {
    /// Its id.
    pub id: CronScheduleId,
    /// The workflow it starts.
    pub workflow_name: String,
    /// The cron expression.
    pub cron_expression: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// Input context of every pipeline it starts.
    pub context: Value,
    /// False while paused.
    pub enabled: bool,
    /// What to do about missed fire times.
    pub catchup_policy: CatchupPolicy,
    /// Most missed fire times `RunAll` replays.
    pub max_catchup: u32,
    /// No fire time before this.
    pub start_at: Option<DateTime<Utc>>,
    /// No fire time after this.
    pub end_at: Option<DateTime<Utc>>,
    /// The next fire time, `None` once the schedule has ended.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last fire time handled.
    pub last_run_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The cron trigger that declared it in code (`#[trigger(cron = …)]`), if one did.
    pub trigger_name: Option<String>,
}

/// One claimed fire time of one schedule.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CronExecution {
    /// Its id.
    pub id: CronExecutionId,
    /// The schedule.
    pub schedule_id: CronScheduleId,
    /// The fire time.
    pub scheduled_time: DateTime<Utc>,
    /// The pipeline it started, once created.
    pub pipeline_execution_id: Option<PipelineExecutionId>,
    /// The runner that claimed it.
    pub claimed_by: String,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
}

/// An event trigger as stored (`trigger_schedules`): written by the runners that have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerSchedule {
    /// The trigger's name.
    pub trigger_name: String,
    /// The workflow it starts.
    pub workflow_name: String,
    /// How often it is polled.
    pub poll_interval: std::time::Duration,
    /// Whether a fire may overlap an unfinished run with the same context hash.
    pub allow_concurrent: bool,
    /// False while paused (`set_trigger_enabled`).
    pub enabled: bool,
    /// The latest poll slot a runner claimed (time since the epoch / poll interval).
    pub last_poll_tick: i64,
    /// When a runner first registered it.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One run an event trigger started (`trigger_executions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerExecution {
    /// Its id.
    pub id: TriggerExecutionId,
    /// The trigger.
    pub trigger_name: String,
    /// The hash of the context it fired with (`TriggerResult::context_hash`).
    pub context_hash: String,
    /// The run it started (`None` once that run was deleted).
    pub pipeline_execution_id: Option<PipelineExecutionId>,
    /// The runner that fired it.
    pub fired_by: String,
    /// When.
    pub fired_at: DateTime<Utc>,
}

/// What recovery (or a cut-short attempt's release) did with one claimed task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredTask {
    /// The task.
    pub task_execution_id: TaskExecutionId,
    /// Its pipeline.
    pub pipeline_execution_id: PipelineExecutionId,
    /// The runner that held it.
    pub previous_claimant: Option<String>,
    /// `Ready` (another attempt follows) or `Failed` (attempts spent).
    pub new_status: TaskStatus,
    /// The attempt number after the decision.
    pub attempt: u32,
}
