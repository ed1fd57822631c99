-- One schedule per declaration: two runners starting at once cannot both create it.
CREATE UNIQUE INDEX cron_schedules_trigger_name ON cron_schedules (trigger_name) WHERE trigger_name IS NOT NULL;
