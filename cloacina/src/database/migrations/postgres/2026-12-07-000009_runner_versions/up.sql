-- The workflow versions each running runner has, so that whether a version is live (a runner that
-- can run it is up) is read from `runners` alone: a graceful stop removes the row and the version
-- stops being live at once, where the registry's last sighting would look live for another minute.
ALTER TABLE runners ADD COLUMN workflow_versions jsonb NOT NULL DEFAULT '[]';
