//! Newtype ids, one per table, so a task id can never be passed where a pipeline id is expected.

use crate::database::UniversalUuid;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new id, time-ordered (UUID v7) so rows made together share index pages.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }

        impl From<UniversalUuid> for $name {
            fn from(u: UniversalUuid) -> Self {
                Self(u.0)
            }
        }

        impl From<$name> for UniversalUuid {
            fn from(id: $name) -> Self {
                UniversalUuid(id.0)
            }
        }
    )*};
}

id_type! {
    /// Id of a `contexts` row.
    ContextId;
    /// Id of a `pipeline_executions` row: one run of a workflow.
    PipelineExecutionId;
    /// Id of a `task_executions` row: one task of one run.
    TaskExecutionId;
    /// Id of a `recovery_events` row.
    RecoveryEventId;
    /// Id of a `task_attempts` row: one ended attempt of a task.
    TaskAttemptId;
    /// Id of a `workflow_registry` row.
    WorkflowRegistryId;
    /// Id of a `workflow_packages` row.
    WorkflowPackageId;
    /// Id of a `cron_schedules` row.
    CronScheduleId;
    /// Id of a `cron_executions` row: one fire time of one schedule.
    CronExecutionId;
    /// Id of a `trigger_executions` row: one run an event trigger started.
    TriggerExecutionId;
}
