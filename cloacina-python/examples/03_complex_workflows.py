"""Tutorial 03 (mirrors upstream cloaca's complex-workflow tutorial): a diamond, a fan-out and a
fan-in; independent branches run at the same time.
"""

import os
import sys

import cloaca

with cloaca.WorkflowBuilder("complex_workflow") as builder:
    builder.description("Diamond, fan-out and fan-in")

    @cloaca.task()
    def prepare_dataset(context):
        context.set("customers", [{"id": i, "value": i * 100, "segment": ["basic", "premium"][i % 2]} for i in range(1, 11)])
        return context

    @cloaca.task(dependencies=["prepare_dataset"])
    def analyze_segments(context):
        segments: dict = {}
        for c in context.get("customers"):
            segments[c["segment"]] = segments.get(c["segment"], 0) + 1
        context.set("segments", segments)
        return context

    @cloaca.task(dependencies=["prepare_dataset"])
    def calculate_metrics(context):
        values = [c["value"] for c in context.get("customers")]
        context.set("metrics", {"total": sum(values), "max": max(values)})
        return context

    @cloaca.task(dependencies=["analyze_segments", "calculate_metrics"])
    def combine_analysis(context):
        context.set("combined", {"segments": context.get("segments"), "metrics": context.get("metrics")})
        return context

    @cloaca.task(dependencies=["combine_analysis"])
    def email_campaign(context):
        context.set("emails_sent", context.get("segments")["basic"])
        return context

    @cloaca.task(dependencies=["combine_analysis"])
    def outreach_campaign(context):
        context.set("calls_made", context.get("segments")["premium"])
        return context

    @cloaca.task(dependencies=["email_campaign", "outreach_campaign"])
    def aggregate_results(context):
        context.set("contacts", context.get("emails_sent") + context.get("calls_made"))
        return context


if __name__ == "__main__":
    with cloaca.DefaultRunner(os.environ.get("DATABASE_URL", "sqlite://:memory:")) as runner:
        result = runner.execute("complex_workflow", cloaca.Context())
        print(f"Workflow Status: {result.status}")
        if result.status != "Completed":
            print(f"Error: {result.error_message}")
            sys.exit(1)
        print(f"Contacts: {result.final_context.get('contacts')}; metrics: {result.final_context.get('metrics')}")
        assert result.final_context.get("contacts") == 10
        assert [t["status"] for t in result.task_results] == ["Completed"] * 7
