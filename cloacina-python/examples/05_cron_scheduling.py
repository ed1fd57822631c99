"""Tutorial 05 (mirrors upstream cloaca's cron tutorial): workflows on cron schedules, with a
six-field expression (seconds first) so the demo fires within seconds; the history shows the runs.
"""

import os
import time

import cloaca

with cloaca.WorkflowBuilder("health_check") as builder:
    builder.description("System health monitoring")

    @cloaca.task()
    def health_check(context):
        context.set("overall_status", "healthy")
        return context

with cloaca.WorkflowBuilder("daily_report") as builder:

    @cloaca.task()
    def daily_report(context):
        context.set("report", {"orders": 150})
        return context


if __name__ == "__main__":
    config = cloaca.DefaultRunnerConfig(cron_poll_interval_seconds=1)
    with cloaca.DefaultRunner.with_config(os.environ.get("DATABASE_URL", "sqlite://:memory:"), config) as runner:
        every_second = runner.register_cron_workflow("health_check", "* * * * * *", "UTC")
        daily = runner.register_cron_workflow("daily_report", "0 9 * * *", "Europe/Paris")
        for s in runner.list_cron_schedules():
            print(f"schedule {s['workflow_name']}: {s['cron_expression']} ({s['timezone']}), next {s['next_run_at']}")
        # Wait (at most 30 s) until the per-second schedule has started two runs.
        deadline = time.monotonic() + 30
        while len(runner.get_cron_execution_history(every_second)) < 2:
            assert time.monotonic() < deadline, "the schedule did not fire"
            time.sleep(0.2)
        runner.set_cron_schedule_enabled(every_second, False)
        history = runner.get_cron_execution_history(every_second)
        print(f"health_check fired {len(history)} times; daily_report has {len(runner.get_cron_execution_history(daily))}")
        runner.delete_cron_schedule(daily)
        left = {s["id"] for s in runner.list_cron_schedules()}
        assert every_second in left and daily not in left
        runner.delete_cron_schedule(every_second)
