-- task_executions changes fast: keep the planner's statistics fresh (re-analyse after ~2% of the
-- table changes rather than PostgreSQL's default 10%), so claims keep using the claim index.
ALTER TABLE task_executions SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
