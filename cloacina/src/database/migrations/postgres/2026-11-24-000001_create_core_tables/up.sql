-- Cloacina core tables (PostgreSQL). The SQLite migration of the same name creates the same
-- tables and columns with SQLite types; a parity test keeps them in step with schema.rs.

CREATE TABLE contexts (
    id          uuid PRIMARY KEY,
    value       jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE pipeline_executions (
    id                uuid PRIMARY KEY,
    workflow_name     text NOT NULL,
    workflow_version  text NOT NULL,
    status            text NOT NULL,
    context_id        uuid REFERENCES contexts (id),
    final_context_id  uuid REFERENCES contexts (id),
    error_details     text,
    started_at        timestamptz,
    completed_at      timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX pipeline_executions_status_created ON pipeline_executions (status, created_at);
CREATE INDEX pipeline_executions_workflow_created ON pipeline_executions (workflow_name, created_at);
CREATE INDEX pipeline_executions_created ON pipeline_executions (created_at);

CREATE TABLE task_executions (
    id                     uuid PRIMARY KEY,
    pipeline_execution_id  uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    task_name              text NOT NULL,
    status                 text NOT NULL,
    attempt                integer NOT NULL,
    max_attempts           integer NOT NULL,
    retry_at               timestamptz,
    claimed_by             text,
    lease_expires_at       timestamptz,
    started_at             timestamptz,
    completed_at           timestamptz,
    error_details          text,
    trigger_rules          jsonb NOT NULL,
    task_configuration     jsonb NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT task_executions_pipeline_task UNIQUE (pipeline_execution_id, task_name)
);
-- Hot path: claim the oldest Ready tasks.
CREATE INDEX task_executions_ready ON task_executions (created_at) WHERE status = 'Ready';
-- Hot path: recovery looks for Running tasks whose lease expired.
CREATE INDEX task_executions_running_lease ON task_executions (lease_expires_at) WHERE status = 'Running';

CREATE TABLE task_execution_metadata (
    id                     uuid PRIMARY KEY,
    task_execution_id      uuid NOT NULL UNIQUE REFERENCES task_executions (id) ON DELETE CASCADE,
    pipeline_execution_id  uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    task_name              text NOT NULL,
    context_id             uuid REFERENCES contexts (id),
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT task_execution_metadata_pipeline_task UNIQUE (pipeline_execution_id, task_name)
);

CREATE TABLE recovery_events (
    id                     uuid PRIMARY KEY,
    pipeline_execution_id  uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    task_execution_id      uuid REFERENCES task_executions (id) ON DELETE CASCADE,
    recovery_type          text NOT NULL,
    details                jsonb,
    recovered_at           timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);
CREATE INDEX recovery_events_pipeline ON recovery_events (pipeline_execution_id);

CREATE TABLE workflow_registry (
    id             uuid PRIMARY KEY,
    workflow_name  text NOT NULL,
    version        text NOT NULL,
    graph          jsonb NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CONSTRAINT workflow_registry_name_version UNIQUE (workflow_name, version)
);

CREATE TABLE workflow_packages (
    id              uuid PRIMARY KEY,
    package_name    text NOT NULL,
    version         text NOT NULL,
    description     text,
    content         bytea NOT NULL,
    content_sha256  text NOT NULL,
    metadata        jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT workflow_packages_name_version UNIQUE (package_name, version)
);

CREATE TABLE cron_schedules (
    id               uuid PRIMARY KEY,
    workflow_name    text NOT NULL,
    cron_expression  text NOT NULL,
    timezone         text NOT NULL,
    context          jsonb NOT NULL,
    enabled          boolean NOT NULL,
    catchup_policy   text NOT NULL,
    max_catchup      integer NOT NULL,
    start_at         timestamptz,
    end_at           timestamptz,
    next_run_at      timestamptz,
    last_run_at      timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
-- Hot path: the cron service asks for enabled schedules that are due.
CREATE INDEX cron_schedules_due ON cron_schedules (next_run_at) WHERE enabled;

CREATE TABLE cron_executions (
    id                     uuid PRIMARY KEY,
    schedule_id            uuid NOT NULL REFERENCES cron_schedules (id) ON DELETE CASCADE,
    scheduled_time         timestamptz NOT NULL,
    pipeline_execution_id  uuid REFERENCES pipeline_executions (id) ON DELETE SET NULL,
    claimed_by             text NOT NULL,
    claimed_at             timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    -- Exactly one pipeline per fire time, across every runner: enforced here, not by timing.
    CONSTRAINT cron_executions_schedule_time UNIQUE (schedule_id, scheduled_time)
);
-- Finds fire times that were claimed but never got their pipeline (the claimant died).
CREATE INDEX cron_executions_orphaned ON cron_executions (claimed_at) WHERE pipeline_execution_id IS NULL;
