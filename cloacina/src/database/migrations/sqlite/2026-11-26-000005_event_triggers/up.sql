-- Event triggers: one row per trigger, written by the runners that have it.
CREATE TABLE trigger_schedules (
    trigger_name      TEXT PRIMARY KEY,
    workflow_name     TEXT NOT NULL,
    poll_interval_ms  INTEGER NOT NULL,
    allow_concurrent  INTEGER NOT NULL,
    enabled           INTEGER NOT NULL,
    -- The latest poll slot (time / poll interval) a runner claimed: one poll per slot across all
    -- runners, by a compare-and-set on this column.
    last_poll_tick    INTEGER NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

-- One row per run a trigger started, with the hash of the context it fired with.
CREATE TABLE trigger_executions (
    id                     BLOB PRIMARY KEY,
    trigger_name           TEXT NOT NULL REFERENCES trigger_schedules (trigger_name) ON DELETE CASCADE,
    context_hash           TEXT NOT NULL,
    pipeline_execution_id  BLOB REFERENCES pipeline_executions (id) ON DELETE SET NULL,
    fired_by               TEXT NOT NULL,
    fired_at               TEXT NOT NULL
);
-- A fire that must not overlap looks up unfinished runs of the same trigger and context.
CREATE INDEX trigger_executions_by_hash ON trigger_executions (trigger_name, context_hash);
-- History, newest first.
CREATE INDEX trigger_executions_by_time ON trigger_executions (trigger_name, fired_at);
