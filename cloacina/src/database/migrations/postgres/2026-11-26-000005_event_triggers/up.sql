-- Event triggers: one row per trigger, written by the runners that have it.
CREATE TABLE trigger_schedules (
    trigger_name      text PRIMARY KEY,
    workflow_name     text NOT NULL,
    poll_interval_ms  bigint NOT NULL,
    allow_concurrent  boolean NOT NULL,
    enabled           boolean NOT NULL,
    -- The latest poll slot (time / poll interval) a runner claimed: one poll per slot across all
    -- runners, by a compare-and-set on this column.
    last_poll_tick    bigint NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- One row per run a trigger started, with the hash of the context it fired with.
CREATE TABLE trigger_executions (
    id                     uuid PRIMARY KEY,
    trigger_name           text NOT NULL REFERENCES trigger_schedules (trigger_name) ON DELETE CASCADE,
    context_hash           text NOT NULL,
    pipeline_execution_id  uuid REFERENCES pipeline_executions (id) ON DELETE SET NULL,
    fired_by               text NOT NULL,
    fired_at               timestamptz NOT NULL
);
-- A fire that must not overlap looks up unfinished runs of the same trigger and context.
CREATE INDEX trigger_executions_by_hash ON trigger_executions (trigger_name, context_hash);
-- History, newest first.
CREATE INDEX trigger_executions_by_time ON trigger_executions (trigger_name, fired_at);
