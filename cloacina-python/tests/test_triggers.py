"""Event triggers from Python (`@cloaca.trigger`, `TriggerResult`) with the Rust trigger's
semantics, the runner's trigger API, and cron triggers; on SQLite and PostgreSQL."""

import threading

import pytest

import cloaca
from conftest import wait_until


def test_trigger_results_and_the_decorated_function():
    fired = cloaca.TriggerResult.fire(cloaca.Context({"file": "a.csv"}))
    assert fired.is_fire_result() and not fired.is_skip_result()
    assert fired.context.get("file") == "a.csv"
    assert cloaca.TriggerResult.fire({"n": 1}).context.get("n") == 1
    assert cloaca.TriggerResult.fire().context is None
    skipped = cloaca.TriggerResult.skip()
    assert skipped.is_skip_result() and skipped.context is None

    @cloaca.trigger(name="watcher", poll_interval="2s", allow_concurrent=False)
    def watcher():
        return cloaca.TriggerResult.skip()

    # The decorator returns the function: calling it polls once (upstream's tutorials do).
    assert watcher().is_skip_result()


def test_bad_trigger_definitions_are_refused_clearly():
    with pytest.raises(ValueError, match="poll_interval"):
        cloaca.trigger(name="t")(lambda: None)
    with pytest.raises(ValueError, match="not both"):
        cloaca.trigger(poll_interval="1s", cron="0 2 * * *", workflow="w")
    with pytest.raises(ValueError, match="cron"):
        cloaca.trigger(cron="not a cron", workflow="w")
    with pytest.raises(ValueError, match="poll interval"):
        cloaca.trigger(poll_interval="1 fortnight")
    with pytest.raises(ValueError, match="once"):
        cloaca.trigger(poll_interval="1s", workflow="a", on="b")
    with pytest.raises(TypeError, match="Context or a dict"):
        cloaca.TriggerResult.fire(42)


def test_a_trigger_starts_runs_deduplicated_and_is_managed_by_the_runner(db):
    release = threading.Event()

    with cloaca.WorkflowBuilder("ingest") as builder:
        @cloaca.task()
        def load(context):
            release.wait(30)
            context.set("loaded", context.get("file"))
            return context

    polls = []

    @cloaca.trigger(name="inbox", poll_interval="100ms", workflow="ingest")
    def inbox():
        polls.append(1)
        # The same file every time: while its run is unfinished, the fires are one.
        return cloaca.TriggerResult.fire(cloaca.Context({"file": "a.csv"}))

    @cloaca.trigger(name="unbound", poll_interval="100ms")
    def unbound():
        return cloaca.TriggerResult.fire()

    with db.runner() as runner:
        wait_until("several polls", lambda: len(polls) >= 5)
        history = runner.get_trigger_execution_history("inbox")
        assert len(history) == 1, history
        run = history[0]["pipeline_execution_id"]
        # Paused on every runner: no more fires; the run in flight finishes.
        runner.set_trigger_enabled("inbox", False)
        assert runner.get_trigger_schedule("inbox")["enabled"] is False
        assert runner.list_trigger_schedules(enabled_only=True) == []
        release.set()
        status = lambda: {r["id"]: r["status"] for r in runner.list_executions("ingest")}.get(run)
        wait_until("the fired run to complete", lambda: status() == "Completed")
        schedules = runner.list_trigger_schedules()
        assert [(s["trigger_name"], s["workflow_name"]) for s in schedules] == [("inbox", "ingest")]
        assert schedules[0]["poll_interval_ms"] == 100
        runner.set_trigger_enabled("inbox", True)
        assert runner.get_trigger_schedule("inbox")["enabled"] is True
        assert runner.get_trigger_schedule("unbound") is None, "a trigger naming no workflow is not polled"


def test_a_cron_trigger_declares_its_schedule_once(db):
    with cloaca.WorkflowBuilder("nightly") as builder:
        @cloaca.task()
        def report(context):
            return context

    @cloaca.trigger(cron="0 2 * * *", timezone="Europe/Berlin", workflow="nightly")
    def nightly_report():
        pass

    for _ in range(2):  # a second runner start does not declare it again
        with db.runner() as runner:
            schedules = runner.list_cron_schedules()
            assert [(s["workflow_name"], s["cron_expression"], s["timezone"]) for s in schedules] == [
                ("nightly", "0 2 * * *", "Europe/Berlin")]
