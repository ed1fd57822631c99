-- The claim orders Ready tasks by (created_at, id); tasks of one pipeline share created_at, so an
-- index on created_at alone left every claim sorting the whole tie group (cost per claim grew
-- with the pipeline). This index matches the ORDER BY, so a claim reads only the rows it takes.
-- Built CONCURRENTLY under a new name, then swapped in: claims and writers keep going, and every
-- step can be repeated if the migration is interrupted.
CREATE INDEX CONCURRENTLY IF NOT EXISTS task_executions_ready_by_id ON task_executions (created_at, id) WHERE status = 'Ready';
DROP INDEX CONCURRENTLY IF EXISTS task_executions_ready;
ALTER INDEX task_executions_ready_by_id RENAME TO task_executions_ready;
