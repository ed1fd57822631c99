-- One row per running runner process: its host (the kernel's boot id, which every container of one
-- machine shares, and the host name to show) and when it last said it was alive. A graceful stop
-- removes the row; a killed runner's row goes stale. `created_at` is when it started (a restart
-- under the same name replaces the row).
CREATE TABLE runners (
    runner_name   TEXT PRIMARY KEY,
    host_id       TEXT NOT NULL,
    host_name     TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    last_seen_at  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
