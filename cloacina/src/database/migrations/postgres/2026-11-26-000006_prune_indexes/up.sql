-- Deleting a finished run (runs prune, retention) cascades to these tables through their
-- pipeline or task column: without an index each deleted row scans the whole child table.
-- Built CONCURRENTLY (writers keep going): run outside a transaction, one statement at a time.
CREATE INDEX CONCURRENTLY IF NOT EXISTS task_execution_metadata_pipeline ON task_execution_metadata (pipeline_execution_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS recovery_events_task ON recovery_events (task_execution_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS cron_executions_pipeline ON cron_executions (pipeline_execution_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS trigger_executions_pipeline ON trigger_executions (pipeline_execution_id);
-- Deleting a context document checks that no run or output still refers to it.
CREATE INDEX CONCURRENTLY IF NOT EXISTS pipeline_executions_context ON pipeline_executions (context_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS pipeline_executions_final_context ON pipeline_executions (final_context_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS task_execution_metadata_context ON task_execution_metadata (context_id);
-- Prune picks finished runs by when they ended.
CREATE INDEX CONCURRENTLY IF NOT EXISTS pipeline_executions_finished ON pipeline_executions (completed_at) WHERE completed_at IS NOT NULL;
