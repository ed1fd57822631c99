-- One row per running runner process: its host (the kernel's boot id, which every container of one
-- machine shares, and the host name to show) and when it last said it was alive. A graceful stop
-- removes the row; a killed runner's row goes stale. `created_at` is when it started (a restart
-- under the same name replaces the row).
CREATE TABLE runners (
    runner_name   text PRIMARY KEY,
    host_id       text NOT NULL,
    host_name     text NOT NULL,
    pid           bigint NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
