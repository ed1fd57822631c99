"""Runner processes: a Python runner killed with SIGKILL mid-task is recovered by another, and
Python and Rust runners share one PostgreSQL database, each running the workflows it has."""

import os
import pathlib
import signal
import subprocess
import sys

import pytest

import cloaca
import survivor
from conftest import wait_until

HERE = pathlib.Path(__file__).parent
REPO = HERE.parent.parent


def test_a_sigkilled_python_runner_s_run_is_finished_by_another(db):
    env = dict(os.environ, HANG="1", PYTHONPATH=str(HERE))
    child = subprocess.Popen([sys.executable, str(HERE / "survivor.py"), db.url, db.schema or ""], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("RUNNING "), f"{line!r} {child.stderr.read() if child.poll() is not None else ''}"
        run_id = line.split()[1]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    survivor.define(hang=False)
    with db.runner(**survivor.LEASE) as runner:
        done = wait_until("the run to finish elsewhere", lambda: next(
            (r for r in runner.list_executions() if r["id"] == run_id and r["status"] in ("Completed", "Failed")), None))
    assert done["status"] == "Completed", done


def test_python_and_rust_runners_share_a_postgres_database(tmp_path):
    from conftest import Db

    worker = pathlib.Path(os.environ.get("CLOACINA_TEST_WORKER", REPO / "target" / "debug" / "cloacina-test-worker"))
    assert worker.exists(), f"{worker} is missing: build it with `cargo test -p cloacina --no-run` (scripts/test does)"
    db = Db("postgres", tmp_path)
    try:
        with cloaca.WorkflowBuilder("python_side"):

            @cloaca.task()
            def py_task(context):
                context.set("by", "python")
                return context

        with db.runner() as runner:
            rust = subprocess.Popen(
                [str(worker)],
                env=dict(os.environ, CLOACINA_WORKER_URL=db.url, CLOACINA_WORKER_SCHEMA=db.schema,
                         CLOACINA_WORKER_START="crash_loop:1", CLOACINA_WORKER_TASK_MS="10"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                lines = iter(rust.stdout.readline, "")
                rust_run = next(l.split()[1] for l in lines if l.startswith("PIPELINE "))
                result = runner.execute("python_side")
                assert result.status == "Completed" and result.final_context.get("by") == "python"
                finished = wait_until("the Rust runner's run", lambda: next(
                    (r for r in runner.list_executions() if r["id"] == rust_run and r["status"] == "Completed"), None))
                assert finished["workflow_name"] == "crash_loop"
            finally:
                rust.stdin.close()
                rust.wait(timeout=60)
    finally:
        db.drop()


# The child sets up the SIGINT handling it relies on: a process started in the background
# (`scripts/test &`, nohup, some CI runners) inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler of its own.
INTERRUPTED = """
import signal, sys, threading, cloaca
signal.signal(signal.SIGINT, signal.default_int_handler)
started = threading.Event()
with cloaca.WorkflowBuilder("stuck"):
    @cloaca.task()
    def stuck(context):
        started.set()
        threading.Event().wait(60)
        return context
runner = cloaca.DefaultRunner.with_config(sys.argv[1], cloaca.DefaultRunnerConfig(schema=sys.argv[2] or None))
threading.Thread(target=lambda: (started.wait(), print("STARTED", flush=True))).start()
try:
    runner.execute("stuck")
except KeyboardInterrupt:
    print("INTERRUPTED", runner.list_executions()[0]["status"], flush=True)
"""


def test_ctrl_c_in_execute_cancels_the_run_and_raises_keyboard_interrupt(db):
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED, db.url, db.schema or ""], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "STARTED", child.stderr.read()
        child.send_signal(signal.SIGINT)
        assert child.stdout.readline().strip() == "INTERRUPTED Cancelled"
    finally:
        child.kill()
        child.wait()
