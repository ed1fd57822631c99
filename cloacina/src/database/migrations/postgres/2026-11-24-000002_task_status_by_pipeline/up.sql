-- The scheduler asks "which of these tasks of pipeline P are in which status" and "does P still
-- have an unfinished task" after every task outcome; this index answers both with seeks, so the
-- cost per task stays flat as pipelines grow.
-- Built CONCURRENTLY (writers keep going): run outside a transaction, one statement at a time.
CREATE INDEX CONCURRENTLY IF NOT EXISTS task_executions_pipeline_status ON task_executions (pipeline_execution_id, status);
