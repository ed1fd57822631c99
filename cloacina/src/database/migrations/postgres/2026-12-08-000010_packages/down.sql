ALTER TABLE cron_schedules DROP COLUMN trigger_name;
ALTER TABLE runners DROP COLUMN retired_versions;
ALTER TABLE workflow_packages DROP COLUMN error;
ALTER TABLE workflow_packages DROP COLUMN status;
