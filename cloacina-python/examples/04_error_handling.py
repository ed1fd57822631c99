"""Tutorial 04 (mirrors upstream cloaca's error-handling tutorial): a flaky task retried with
backoff until it succeeds, a task that fails for good, and a fallback that runs because of it.
"""

import os
import sys

import cloaca

calls = {"fetch": 0}


def report_failure(task_id, error, context):
    print(f"on_failure: {task_id} failed: {error.splitlines()[0]}")


with cloaca.WorkflowBuilder("error_handling_workflow") as builder:
    builder.description("Retries, a final failure and a fallback")

    @cloaca.task(retry_attempts=3, retry_delay_ms=10, retry_backoff="exponential")
    def fetch_external_data(context):
        calls["fetch"] += 1
        if calls["fetch"] < 3:
            raise ConnectionError(f"network timeout (attempt {calls['fetch']})")
        context.set("fetched", True)
        return context

    @cloaca.task(dependencies=["fetch_external_data"], retry_attempts=1, on_failure=report_failure)
    def validate_strictly(context):
        raise ValueError("record 42 is malformed")

    @cloaca.task(
        dependencies=["validate_strictly"],
        trigger_rules=cloaca.task_failed("validate_strictly"),
    )
    def fallback_processing(context):
        context.set("used_fallback", True)
        return context


if __name__ == "__main__":
    with cloaca.DefaultRunner(os.environ.get("DATABASE_URL", "sqlite://:memory:")) as runner:
        result = runner.execute("error_handling_workflow", cloaca.Context())
        print(f"Workflow Status: {result.status}")
        tasks = {t["task_name"]: t for t in result.task_results}
        for name, t in tasks.items():
            print(f"  {name}: {t['status']} after {t['attempt_count']} attempt(s)")
        # A failed task fails the run; its fallback still ran.
        assert result.status == "Failed", result
        assert tasks["fetch_external_data"]["attempt_count"] == 3
        assert tasks["validate_strictly"]["status"] == "Failed"
        assert "ValueError: record 42 is malformed" in tasks["validate_strictly"]["error_message"]
        assert tasks["fallback_processing"]["status"] == "Completed"
        sys.exit(0)
