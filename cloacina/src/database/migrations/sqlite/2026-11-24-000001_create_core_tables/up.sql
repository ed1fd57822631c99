-- Cloacina core tables (SQLite). UUIDs are 16-byte BLOBs, timestamps fixed-width UTC TEXT
-- (so text order is time order), booleans INTEGER 0/1, JSON TEXT. The PostgreSQL migration of
-- the same name creates the same tables and columns with native types; a parity test keeps them
-- in step with schema.rs.

CREATE TABLE contexts (
    id          BLOB PRIMARY KEY,
    value       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE pipeline_executions (
    id                BLOB PRIMARY KEY,
    workflow_name     TEXT NOT NULL,
    workflow_version  TEXT NOT NULL,
    status            TEXT NOT NULL,
    context_id        BLOB REFERENCES contexts (id),
    final_context_id  BLOB REFERENCES contexts (id),
    error_details     TEXT,
    started_at        TEXT,
    completed_at      TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX pipeline_executions_status_created ON pipeline_executions (status, created_at);
CREATE INDEX pipeline_executions_workflow_created ON pipeline_executions (workflow_name, created_at);
CREATE INDEX pipeline_executions_created ON pipeline_executions (created_at);

CREATE TABLE task_executions (
    id                     BLOB PRIMARY KEY,
    pipeline_execution_id  BLOB NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    task_name              TEXT NOT NULL,
    status                 TEXT NOT NULL,
    attempt                INTEGER NOT NULL,
    max_attempts           INTEGER NOT NULL,
    retry_at               TEXT,
    claimed_by             TEXT,
    lease_expires_at       TEXT,
    started_at             TEXT,
    completed_at           TEXT,
    error_details          TEXT,
    trigger_rules          TEXT NOT NULL,
    task_configuration     TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    CONSTRAINT task_executions_pipeline_task UNIQUE (pipeline_execution_id, task_name)
);
-- Hot path: claim the oldest Ready tasks.
CREATE INDEX task_executions_ready ON task_executions (created_at) WHERE status = 'Ready';
-- Hot path: recovery looks for Running tasks whose lease expired.
CREATE INDEX task_executions_running_lease ON task_executions (lease_expires_at) WHERE status = 'Running';

CREATE TABLE task_execution_metadata (
    id                     BLOB PRIMARY KEY,
    task_execution_id      BLOB NOT NULL UNIQUE REFERENCES task_executions (id) ON DELETE CASCADE,
    pipeline_execution_id  BLOB NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    task_name              TEXT NOT NULL,
    context_id             BLOB REFERENCES contexts (id),
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    CONSTRAINT task_execution_metadata_pipeline_task UNIQUE (pipeline_execution_id, task_name)
);

CREATE TABLE recovery_events (
    id                     BLOB PRIMARY KEY,
    pipeline_execution_id  BLOB NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    task_execution_id      BLOB REFERENCES task_executions (id) ON DELETE CASCADE,
    recovery_type          TEXT NOT NULL,
    details                TEXT,
    recovered_at           TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL
);
CREATE INDEX recovery_events_pipeline ON recovery_events (pipeline_execution_id);

CREATE TABLE workflow_registry (
    id             BLOB PRIMARY KEY,
    workflow_name  TEXT NOT NULL,
    version        TEXT NOT NULL,
    graph          TEXT NOT NULL,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CONSTRAINT workflow_registry_name_version UNIQUE (workflow_name, version)
);

CREATE TABLE workflow_packages (
    id              BLOB PRIMARY KEY,
    package_name    TEXT NOT NULL,
    version         TEXT NOT NULL,
    description     TEXT,
    content         BLOB NOT NULL,
    content_sha256  TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT workflow_packages_name_version UNIQUE (package_name, version)
);

CREATE TABLE cron_schedules (
    id               BLOB PRIMARY KEY,
    workflow_name    TEXT NOT NULL,
    cron_expression  TEXT NOT NULL,
    timezone         TEXT NOT NULL,
    context          TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    catchup_policy   TEXT NOT NULL,
    max_catchup      INTEGER NOT NULL,
    start_at         TEXT,
    end_at           TEXT,
    next_run_at      TEXT,
    last_run_at      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
-- Hot path: the cron service asks for enabled schedules that are due.
CREATE INDEX cron_schedules_due ON cron_schedules (next_run_at) WHERE enabled = 1;

CREATE TABLE cron_executions (
    id                     BLOB PRIMARY KEY,
    schedule_id            BLOB NOT NULL REFERENCES cron_schedules (id) ON DELETE CASCADE,
    scheduled_time         TEXT NOT NULL,
    pipeline_execution_id  BLOB REFERENCES pipeline_executions (id) ON DELETE SET NULL,
    claimed_by             TEXT NOT NULL,
    claimed_at             TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    -- Exactly one pipeline per fire time, across every runner: enforced here, not by timing.
    CONSTRAINT cron_executions_schedule_time UNIQUE (schedule_id, scheduled_time)
);
-- Finds fire times that were claimed but never got their pipeline (the claimant died).
CREATE INDEX cron_executions_orphaned ON cron_executions (claimed_at) WHERE pipeline_execution_id IS NULL;
