"""The engine from Python, on SQLite and PostgreSQL: runs, retries, errors, trigger rules,
timeouts, async tasks, cancel and pause, cron, and the GIL released while Rust waits."""

import threading
import time

import pytest

import cloaca
from conftest import wait_until


def test_a_workflow_runs_and_returns_its_context(db):
    with cloaca.WorkflowBuilder("etl") as builder:
        builder.description("Extract and load")

        @cloaca.task()
        def extract(context):
            context.set("rows", 3)
            return context

        @cloaca.task(dependencies=["extract"], retry_attempts=3)
        def load(context):
            context.set("loaded", context.get("rows"))
            return context

    with db.runner() as runner:
        result = runner.execute("etl", cloaca.Context({"source": "s3"}))
        assert result.status == "Completed", result
        assert result.final_context.get("loaded") == 3
        assert result.final_context.get("source") == "s3"
        assert [t["task_name"] for t in result.task_results] == ["extract", "load"]
        assert result.end_time is not None and result.duration_seconds >= 0
        runs = runner.list_executions()
        assert [(r["workflow_name"], r["status"]) for r in runs] == [("etl", "Completed")]


def test_a_task_may_return_none_and_keep_its_changes(db):
    with cloaca.WorkflowBuilder("in_place"):

        @cloaca.task()
        def mutate(context):
            context["touched"] = True

    with db.runner() as runner:
        assert runner.execute("in_place").final_context.get("touched") is True


def test_a_failing_task_is_retried_until_it_succeeds(db):
    attempts = []
    with cloaca.WorkflowBuilder("flaky"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=10, retry_jitter=False)
        def flaky(context):
            attempts.append(time.monotonic())
            if len(attempts) < 3:
                raise ConnectionError("temporarily unavailable")
            return context

    with db.runner() as runner:
        result = runner.execute("flaky")
    assert result.status == "Completed", result
    assert len(attempts) == 3
    assert result.task_results[0]["attempt_count"] == 3


def test_an_exception_fails_the_task_with_type_message_and_traceback(db):
    with cloaca.WorkflowBuilder("broken"):

        @cloaca.task(retry_attempts=1)
        def explode(context):
            helper_that_raises(context)

    with db.runner() as runner:
        result = runner.execute("broken")
    assert result.status == "Failed"
    error = result.task_results[0]["error_message"]
    assert "KeyError: 'missing'" in error, error
    assert "Traceback" in error and "helper_that_raises" in error, error


def helper_that_raises(context):
    return {}["missing"]


def test_retry_conditions_decide_what_is_retried(db):
    calls = {"never": 0, "transient": 0}
    with cloaca.WorkflowBuilder("conditions"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=10, retry_condition="never")
        def never(context):
            calls["never"] += 1
            raise RuntimeError("network down")

        @cloaca.task(retry_attempts=3, retry_delay_ms=10, retry_condition="transient")
        def transient(context):
            calls["transient"] += 1
            raise ValueError("bad input")  # not transient: no retry

    with db.runner() as runner:
        assert runner.execute("conditions").status == "Failed"
    assert calls == {"never": 1, "transient": 1}


def test_trigger_rules_skip_and_run_branches(db):
    with cloaca.WorkflowBuilder("gated"):

        @cloaca.task()
        def decide(context):
            context.set("do_audit", False)
            return context

        @cloaca.task(dependencies=["decide"], trigger_rules=cloaca.context_value("do_audit", "Equals", True))
        def audit(context):
            raise AssertionError("audit must be skipped")

        @cloaca.task(dependencies=["audit"], trigger_rules=cloaca.task_skipped("audit"))
        def record(context):
            context.set("recorded", True)
            return context

    with db.runner() as runner:
        result = runner.execute("gated")
    statuses = {t["task_name"]: t["status"] for t in result.task_results}
    assert statuses == {"decide": "Completed", "audit": "Skipped", "record": "Completed"}, statuses
    assert result.status == "Completed"


def test_an_attempt_past_its_timeout_fails(db):
    release = threading.Event()
    with cloaca.WorkflowBuilder("slow"):

        @cloaca.task(retry_attempts=1, timeout_seconds=0.3)
        def slow(context):
            release.wait(30)
            return context

    try:
        with db.runner() as runner:
            result = runner.execute("slow")
    finally:
        release.set()
    assert result.status == "Failed"
    assert "timeout" in result.task_results[0]["error_message"].lower()


def test_async_tasks_run(db):
    import asyncio

    with cloaca.WorkflowBuilder("async_flow"):

        @cloaca.task()
        async def fetch(context):
            await asyncio.sleep(0.01)
            context.set("fetched", "yes")
            return context

    with db.runner() as runner:
        result = runner.execute("async_flow")
    assert result.status == "Completed" and result.final_context.get("fetched") == "yes"


def test_the_gil_is_released_while_the_engine_works(db):
    """The task waits for a Python thread that can only go on if `execute` let go of the GIL."""
    task_started, signal = threading.Event(), threading.Event()
    with cloaca.WorkflowBuilder("needs_gil"):

        @cloaca.task()
        def waits(context):
            task_started.set()
            context.set("signalled", signal.wait(20))
            return context

    def other_thread():
        task_started.wait(20)  # then it needs the GIL back, while the main thread is in execute()
        signal.set()

    with db.runner() as runner:
        t = threading.Thread(target=other_thread)
        t.start()
        result = runner.execute("needs_gil")
        t.join()
    assert result.final_context.get("signalled") is True


def test_cancel_pause_and_resume(db):
    started, release = threading.Event(), threading.Event()
    with cloaca.WorkflowBuilder("long"):

        @cloaca.task()
        def first(context):
            started.set()
            release.wait(30)
            return context

        @cloaca.task(dependencies=["first"])
        def second(context):
            return context

    with db.runner() as runner:
        handle = runner.execute_async("long")
        assert started.wait(30)
        runner.pause(handle.execution_id, "maintenance")
        assert handle.get_status() == "Paused"
        release.set()
        runner.resume(handle.execution_id)
        assert handle.wait_for_completion(30).status == "Completed"

        started.clear()
        release.clear()
        other = runner.execute_async("long")
        assert started.wait(30)
        other.cancel()
        release.set()
        assert other.wait_for_completion(30).status == "Cancelled"


def test_cron_schedules_fire_and_can_be_managed(db):
    with cloaca.WorkflowBuilder("tick"):

        @cloaca.task()
        def tick(context):
            return context

    with db.runner(cron_poll_interval_seconds=1) as runner:
        schedule = runner.register_cron_workflow("tick", "* * * * * *", "UTC")
        assert runner.get_cron_schedule(schedule)["cron_expression"] == "* * * * * *"
        history = wait_until("two fires", lambda: len(runner.get_cron_execution_history(schedule)) >= 2 or None)
        assert history
        runner.set_cron_schedule_enabled(schedule, False)
        assert runner.list_cron_schedules(enabled_only=True) == []
        runner.update_cron_schedule(schedule, "0 9 * * *", "Europe/Paris")
        assert runner.get_cron_schedule(schedule)["timezone"] == "Europe/Paris"
        stats = runner.get_cron_execution_stats("2000-01-01T00:00:00")
        assert stats["total_executions"] >= 2
        runner.delete_cron_schedule(schedule)
        assert runner.list_cron_schedules() == []
        with pytest.raises(ValueError, match="cron"):
            runner.register_cron_workflow("tick", "not a cron", "UTC")


def test_bad_definitions_and_inputs_get_clear_errors(db):
    with pytest.raises(ValueError, match="(?i)cycle"):
        with cloaca.WorkflowBuilder("cyclic"):

            @cloaca.task(dependencies=["b"])
            def a(context):
                return context

            @cloaca.task(dependencies=["a"])
            def b(context):
                return context

    with pytest.raises(ValueError, match="retry_backoff"):
        cloaca.task(retry_backoff="sometimes")
    with pytest.raises(TypeError, match="no setting"):
        cloaca.DefaultRunnerConfig(pipeline_timeout_seconds=10)
    with pytest.raises(TypeError, match="cannot be stored"):
        cloaca.Context({"when": object()})
    with db.runner() as runner:
        with pytest.raises(ValueError, match="nowhere"):
            runner.execute("nowhere")

        with cloaca.WorkflowBuilder("too_late"):

            @cloaca.task()
            def late(context):
                return context

        with pytest.raises(ValueError, match="defined after this runner was created"):
            runner.execute_async("too_late")



def test_connection_errors_are_clear_and_never_show_the_password():
    with pytest.raises(ConnectionError) as refused:
        cloaca.DefaultRunner("postgres://bob:s3cret@127.0.0.1:1/db")
    assert "s3cret" not in str(refused.value) and "bob:***@127.0.0.1:1" in str(refused.value)
    with pytest.raises(ValueError, match="unsupported database URL scheme"):
        cloaca.DefaultRunner("mysql://host/db")
    with pytest.raises(ValueError, match="invalid schema name"):
        cloaca.DefaultRunner.with_schema("postgres://postgres@127.0.0.1:5432/postgres", "Bad Name")
    with pytest.raises(ValueError, match="max_concurrent_tasks"):
        cloaca.DefaultRunnerConfig(max_concurrent_tasks=0)


def test_tenants_are_postgres_schemas(db):
    import uuid

    with cloaca.WorkflowBuilder("tenant_job"):

        @cloaca.task()
        def job(context):
            context.set("ok", True)
            return context

    if db.backend == "sqlite":
        with pytest.raises(ValueError, match="SQLite has neither"):
            cloaca.DatabaseAdmin(db.url).create_tenant(cloaca.TenantConfig("t_x", "t_x_user"))
        return
    admin = cloaca.DatabaseAdmin(db.url)
    name = f"t_{uuid.uuid4().hex[:8]}"
    creds = admin.create_tenant(cloaca.TenantConfig(name, f"{name}_user", ""))
    try:
        assert len(creds.password) == 32 and creds.password not in repr(creds)
        # The tenant's own login, confined to its schema, runs the workflow.
        with cloaca.DefaultRunner.with_config(creds.connection_string, cloaca.DefaultRunnerConfig(schema=name)) as r:
            assert r.execute("tenant_job").status == "Completed"
    finally:
        admin.remove_tenant(creds.schema_name, creds.username)


def test_a_python_task_holding_the_gil_does_not_stop_heartbeats(db):
    """A pure-Python busy loop for three lease lengths: the lease is renewed by Rust threads that
    never need the GIL, so the attempt is neither expired nor run twice."""
    attempts = []
    with cloaca.WorkflowBuilder("busy"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=10)
        def spin(context):
            attempts.append(1)
            end = time.monotonic() + 3.0
            n = 0
            while time.monotonic() < end:
                n += 1
            context.set("spins", n)
            return context

    with db.runner(lease_duration_ms=1000, heartbeat_interval_ms=200, recovery_interval_ms=100) as runner:
        result = runner.execute("busy")
    assert result.status == "Completed", result
    assert len(attempts) == 1 and result.task_results[0]["attempt_count"] == 1


def test_a_deferred_task_gives_its_slot_to_another(db):
    """One slot: `waiter` (created first, so claimed first) defers until `setter` has run, which
    needs the slot `waiter` gave back; without the release this deadlocks."""
    flag = threading.Event()
    with cloaca.WorkflowBuilder("deferring"):

        @cloaca.task()
        def waiter(context, handle):
            assert handle.is_slot_held()
            context.set("had_to_wait", not flag.is_set())
            handle.defer_until(flag.is_set, poll_interval_ms=10)
            assert handle.is_slot_held()
            return context

        @cloaca.task()
        def setter(context):
            flag.set()
            return context

    with db.runner(max_concurrent_tasks=1) as runner:
        result = runner.execute_async("deferring").wait_for_completion(30)  # a held slot: timeout
    assert result.status == "Completed", [t["error_message"] for t in result.task_results]
    assert result.final_context.get("had_to_wait") is True
