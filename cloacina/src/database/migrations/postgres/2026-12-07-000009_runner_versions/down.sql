ALTER TABLE runners DROP COLUMN workflow_versions;
