"""The workflow the process tests share: one runner process runs it and is killed with SIGKILL,
another finishes it. Run as a script, it starts a runner (`HANG=1`: the first task never ends),
starts one run, prints `RUNNING <id>` once the task runs, and waits to be killed."""

import os
import sys
import threading

import cloaca

LEASE = dict(lease_duration_ms=1000, heartbeat_interval_ms=200, recovery_interval_ms=200, scheduler_poll_interval_ms=20)


def define(hang):
    """Defines `survivor`; the same structure (so the same version) whether it hangs or not."""
    started = threading.Event()
    with cloaca.WorkflowBuilder("survivor"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=10)
        def work(context):
            started.set()
            if hang:
                threading.Event().wait()
            context.set("done_by", os.getpid())
            return context

        @cloaca.task(dependencies=["work"])
        def after(context):
            context.set("after", True)
            return context

    return started


if __name__ == "__main__":
    url, schema = sys.argv[1], (sys.argv[2] or None)
    started = define(hang=os.environ.get("HANG") == "1")
    runner = cloaca.DefaultRunner.with_config(url, cloaca.DefaultRunnerConfig(schema=schema, **LEASE))
    handle = runner.execute_async("survivor", cloaca.Context())
    started.wait()
    print(f"RUNNING {handle.execution_id}", flush=True)
    threading.Event().wait()
