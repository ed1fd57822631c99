//! The one Diesel schema for both backends (seed 003). Custom SQL types from
//! [`super::universal_types`] absorb the column-type differences; the migrations in
//! `migrations/postgres` and `migrations/sqlite` create matching tables (checked by a parity test).

// The `table!` macro generates undocumented items.
#![allow(missing_docs)]

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// JSON context documents: pipeline inputs, task outputs, final results.
    contexts (id) {
        id -> DbUuid,
        value -> DbJson,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// One row per run of a workflow.
    pipeline_executions (id) {
        id -> DbUuid,
        workflow_name -> Text,
        workflow_version -> Text,
        status -> Text,
        context_id -> Nullable<DbUuid>,
        final_context_id -> Nullable<DbUuid>,
        error_details -> Nullable<Text>,
        started_at -> Nullable<DbTimestamp>,
        completed_at -> Nullable<DbTimestamp>,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// One row per task of a pipeline: its status, attempts, claim and lease.
    task_executions (id) {
        id -> DbUuid,
        pipeline_execution_id -> DbUuid,
        task_name -> Text,
        status -> Text,
        attempt -> Integer,
        max_attempts -> Integer,
        retry_at -> Nullable<DbTimestamp>,
        claimed_by -> Nullable<Text>,
        lease_expires_at -> Nullable<DbTimestamp>,
        started_at -> Nullable<DbTimestamp>,
        completed_at -> Nullable<DbTimestamp>,
        error_details -> Nullable<Text>,
        trigger_rules -> DbJson,
        task_configuration -> DbJson,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// A completed task's output context, one row per task execution.
    task_execution_metadata (id) {
        id -> DbUuid,
        task_execution_id -> DbUuid,
        pipeline_execution_id -> DbUuid,
        task_name -> Text,
        context_id -> Nullable<DbUuid>,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// What recovery decided about a task whose runner stopped renewing its lease.
    recovery_events (id) {
        id -> DbUuid,
        pipeline_execution_id -> DbUuid,
        task_execution_id -> Nullable<DbUuid>,
        recovery_type -> Text,
        details -> Nullable<DbJson>,
        recovered_at -> DbTimestamp,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// Workflow definitions runners have seen: name, structural version and task graph.
    workflow_registry (id) {
        id -> DbUuid,
        workflow_name -> Text,
        version -> Text,
        graph -> DbJson,
        first_seen_at -> DbTimestamp,
        last_seen_at -> DbTimestamp,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// Packaged workflow archives (opaque bytes plus metadata), one row per name and version.
    workflow_packages (id) {
        id -> DbUuid,
        package_name -> Text,
        version -> Text,
        description -> Nullable<Text>,
        content -> Binary,
        content_sha256 -> Text,
        metadata -> DbJson,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
        status -> Text,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// Cron schedules that start pipelines.
    cron_schedules (id) {
        id -> DbUuid,
        workflow_name -> Text,
        cron_expression -> Text,
        timezone -> Text,
        context -> DbJson,
        enabled -> DbBool,
        catchup_policy -> Text,
        max_catchup -> Integer,
        start_at -> Nullable<DbTimestamp>,
        end_at -> Nullable<DbTimestamp>,
        next_run_at -> Nullable<DbTimestamp>,
        last_run_at -> Nullable<DbTimestamp>,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
        trigger_name -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// One row per (schedule, fire time): the unique key makes each fire time start one pipeline.
    cron_executions (id) {
        id -> DbUuid,
        schedule_id -> DbUuid,
        scheduled_time -> DbTimestamp,
        pipeline_execution_id -> Nullable<DbUuid>,
        claimed_by -> Text,
        claimed_at -> DbTimestamp,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// Event triggers, one row per trigger name.
    trigger_schedules (trigger_name) {
        trigger_name -> Text,
        workflow_name -> Text,
        poll_interval_ms -> BigInt,
        allow_concurrent -> DbBool,
        enabled -> DbBool,
        last_poll_tick -> BigInt,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// One row per run an event trigger started.
    trigger_executions (id) {
        id -> DbUuid,
        trigger_name -> Text,
        context_hash -> Text,
        pipeline_execution_id -> Nullable<DbUuid>,
        fired_by -> Text,
        fired_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// One row per attempt of a task that ended without completing it (retried, failed, given
    /// back, lease expired); the completing or current attempt is its `task_executions` row.
    task_attempts (id) {
        id -> DbUuid,
        task_execution_id -> DbUuid,
        pipeline_execution_id -> DbUuid,
        attempt -> Integer,
        outcome -> Text,
        runner -> Nullable<Text>,
        error_details -> Nullable<Text>,
        started_at -> Nullable<DbTimestamp>,
        ended_at -> DbTimestamp,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::database::universal_types::*;

    /// Running runner processes and the host each runs on.
    runners (runner_name) {
        runner_name -> Text,
        host_id -> Text,
        host_name -> Text,
        pid -> BigInt,
        last_seen_at -> DbTimestamp,
        created_at -> DbTimestamp,
        updated_at -> DbTimestamp,
        workflow_versions -> DbJson,
        retired_versions -> DbJson,
    }
}

diesel::joinable!(pipeline_executions -> contexts (context_id));
diesel::joinable!(task_executions -> pipeline_executions (pipeline_execution_id));
diesel::joinable!(task_execution_metadata -> task_executions (task_execution_id));
diesel::joinable!(task_execution_metadata -> contexts (context_id));
diesel::joinable!(recovery_events -> pipeline_executions (pipeline_execution_id));
diesel::joinable!(recovery_events -> task_executions (task_execution_id));
diesel::joinable!(task_attempts -> task_executions (task_execution_id));
diesel::joinable!(task_attempts -> pipeline_executions (pipeline_execution_id));
diesel::joinable!(cron_executions -> cron_schedules (schedule_id));
diesel::joinable!(cron_executions -> pipeline_executions (pipeline_execution_id));
diesel::joinable!(trigger_executions -> trigger_schedules (trigger_name));
diesel::joinable!(trigger_executions -> pipeline_executions (pipeline_execution_id));

diesel::allow_tables_to_appear_in_same_query!(
    contexts,
    pipeline_executions,
    task_executions,
    task_execution_metadata,
    recovery_events,
    task_attempts,
    workflow_registry,
    workflow_packages,
    cron_schedules,
    cron_executions,
    trigger_schedules,
    trigger_executions,
    runners
);

/// Calls `$callback!(contexts, pipeline_executions, …)` with every table of the schema, in
/// dependency order (parents first): the one list of tables, for code that visits each of them.
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_table {
    ($callback:ident) => {
        $callback!(
            contexts,
            pipeline_executions,
            task_executions,
            task_execution_metadata,
            recovery_events,
            task_attempts,
            workflow_registry,
            workflow_packages,
            cron_schedules,
            cron_executions,
            trigger_schedules,
            trigger_executions,
            runners
        )
    };
}

macro_rules! table_names {
    ($($table:ident),*) => {
        [$(stringify!($table)),*]
    };
}

/// Every table of the schema, in dependency order (parents first).
pub const TABLES: [&str; 13] = for_each_table!(table_names);
