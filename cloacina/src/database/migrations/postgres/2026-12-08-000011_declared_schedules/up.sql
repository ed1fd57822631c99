-- One schedule per declaration: two runners starting at once cannot both create it.
-- Built CONCURRENTLY (writers keep going): run outside a transaction, one statement at a time.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS cron_schedules_trigger_name ON cron_schedules (trigger_name) WHERE trigger_name IS NOT NULL;
