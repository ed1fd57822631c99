-- One row per attempt of a task that ended without completing it: an error that will be retried,
-- a final failure, an attempt given back cut short, a lease that expired. The attempt that
-- completes a task (or is running now) is described by its task_executions row.
CREATE TABLE task_attempts (
    id                     uuid PRIMARY KEY,
    task_execution_id      uuid NOT NULL REFERENCES task_executions (id) ON DELETE CASCADE,
    pipeline_execution_id  uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    attempt                integer NOT NULL,
    outcome                text NOT NULL,
    runner                 text,
    error_details          text,
    started_at             timestamptz,
    ended_at               timestamptz NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CONSTRAINT task_attempts_task_attempt UNIQUE (task_execution_id, attempt)
);
-- A run's detail lists its attempts; deleting a run cascades through this column.
CREATE INDEX task_attempts_pipeline ON task_attempts (pipeline_execution_id);
