"""Tutorial 01 (mirrors upstream cloaca's first tutorial): three tasks in a row, data passed in
the context, the result read back.

    python examples/01_first_workflow.py          # DATABASE_URL=postgres://... for PostgreSQL
"""

import os
import sys

import cloaca

with cloaca.WorkflowBuilder("simple_workflow") as builder:
    builder.description("Three tasks in a row")

    @cloaca.task()
    def start_process(context):
        context.set("process_id", "proc_001")
        context.set("items_to_process", 10)
        return context

    @cloaca.task(dependencies=["start_process"])
    def process_data(context):
        items = [f"item_{i}_processed" for i in range(context.get("items_to_process"))]
        context.set("processed_items", items)
        return context

    @cloaca.task(dependencies=["process_data"])
    def finalize_process(context):
        context.set("final_summary", {
            "process_id": context.get("process_id"),
            "items_processed": len(context.get("processed_items")),
            "status": "completed",
        })
        return context


if __name__ == "__main__":
    runner = cloaca.DefaultRunner(os.environ.get("DATABASE_URL", "sqlite://:memory:"))
    result = runner.execute("simple_workflow", cloaca.Context({"tutorial": "01"}))
    print(f"Workflow Status: {result.status}")
    if result.status != "Completed":
        print(f"Error: {result.error_message}")
        runner.shutdown()
        sys.exit(1)
    summary = result.final_context.get("final_summary")
    print(f"Final Summary: {summary}")
    runner.shutdown()
    assert summary == {"process_id": "proc_001", "items_processed": 10, "status": "completed"}
