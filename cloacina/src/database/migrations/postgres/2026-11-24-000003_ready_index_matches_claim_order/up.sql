-- The claim orders Ready tasks by (created_at, id); tasks of one pipeline share created_at, so an
-- index on created_at alone left every claim sorting the whole tie group (cost per claim grew
-- with the pipeline). This index matches the ORDER BY, so a claim reads only the rows it takes.
DROP INDEX task_executions_ready;
CREATE INDEX task_executions_ready ON task_executions (created_at, id) WHERE status = 'Ready';
