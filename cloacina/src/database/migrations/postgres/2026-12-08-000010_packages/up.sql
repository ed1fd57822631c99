-- Packages a daemon or server loaded: whether the load worked (`loaded`), failed (`failed`, with
-- the error) or the archive was taken away (`removed`: its workflows start no new runs).
ALTER TABLE workflow_packages ADD COLUMN status TEXT NOT NULL DEFAULT 'loaded';
ALTER TABLE workflow_packages ADD COLUMN error TEXT;
-- Versions a runner still runs for the runs in flight but starts no new runs of (a package that
-- was replaced or removed): live for those runs, never chosen for a new one.
ALTER TABLE runners ADD COLUMN retired_versions jsonb NOT NULL DEFAULT '[]';
-- A schedule declared in code (`#[trigger(cron = …)]`, `@cloaca.trigger(cron=…)`) carries the
-- declaration's name, so a runner creates it once however often it starts.
ALTER TABLE cron_schedules ADD COLUMN trigger_name TEXT;
