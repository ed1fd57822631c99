DROP INDEX task_executions_ready;
CREATE INDEX task_executions_ready ON task_executions (created_at) WHERE status = 'Ready';
