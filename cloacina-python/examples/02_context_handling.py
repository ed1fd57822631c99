"""Tutorial 02 (mirrors upstream cloaca's context tutorial): nested data through extract,
transform, validate and report.
"""

import os
import sys
from datetime import datetime

import cloaca

with cloaca.WorkflowBuilder("data_pipeline") as builder:
    builder.description("Extract, transform, validate, report")

    @cloaca.task()
    def extract_data(context):
        context.set("raw_data", {
            "users": [
                {"id": 1, "name": "Alice", "email": "alice@example.com", "score": 85},
                {"id": 2, "name": "Bob", "email": "bob@example.com", "score": 92},
                {"id": 3, "name": "Charlie", "email": "charlie@example.com", "score": 78},
            ],
            "extracted_at": datetime.now().isoformat(),
        })
        return context

    @cloaca.task(dependencies=["extract_data"])
    def transform_data(context):
        users = context.get("raw_data")["users"]
        grade = lambda s: "A" if s >= 90 else "B" if s >= 80 else "C"
        transformed = [
            {"user_id": u["id"], "display_name": u["name"].upper(), "grade": grade(u["score"]), "score": u["score"]}
            for u in users
        ]
        context.set("transformed_data", {
            "users": transformed,
            "average_score": sum(u["score"] for u in users) / len(users),
        })
        return context

    @cloaca.task(dependencies=["transform_data"])
    def validate_data(context):
        users = context.get("transformed_data")["users"]
        errors = [u["user_id"] for u in users if not 0 <= u["score"] <= 100]
        context.set("validation_results", {"status": "passed" if not errors else "failed", "errors": errors})
        return context

    @cloaca.task(dependencies=["validate_data"])
    def generate_report(context):
        context.set("final_report", {
            "users": len(context.get("transformed_data")["users"]),
            "average_score": context.get("transformed_data")["average_score"],
            "validation": context.get("validation_results")["status"],
            "pipeline": context.get("pipeline_name"),
        })
        return context


if __name__ == "__main__":
    with cloaca.DefaultRunner(os.environ.get("DATABASE_URL", "sqlite://:memory:")) as runner:
        result = runner.execute("data_pipeline", cloaca.Context({"pipeline_name": "user_data_processing"}))
        print(f"Workflow Status: {result.status}")
        if result.status != "Completed":
            print(f"Error: {result.error_message}")
            sys.exit(1)
        report = result.final_context.get("final_report")
        print(f"Report: {report}")
        assert report == {"users": 3, "average_score": 85.0, "validation": "passed", "pipeline": "user_data_processing"}
