"""The HTTP API fuzzed from its own OpenAPI document with schemathesis, against a live
`cloacinactl serve` over a database a Python runner is using (registered workflows, finished
and running runs, a schedule), on SQLite and on PostgreSQL. Checked: no 5xx, every status and
content type documented, every response matching its schema, and data the schema forbids
refused (unknown fields, out-of-range values)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import urllib.request

import pytest

import cloaca
from conftest import free_port, wait_ready

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "fuzz-token-0123456789abcdef"
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
])


def cloacinactl():
    path = pathlib.Path(os.environ.get("CLOACINA_CTL", REPO / "target" / "debug" / "cloacinactl"))
    assert path.exists(), f"{path} is missing: build it with `cargo build -p cloacinactl` (scripts/test does)"
    return path


def schemathesis():
    found = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or shutil.which("schemathesis")
    assert found, "schemathesis is missing: `pip install schemathesis` (scripts/test installs it into its venv)"
    return found


def serve(db, port):
    # The fuzzer sends requests without the token on purpose, far more than the default 10 per
    # minute a client address may fail before it is refused (429) for the rest of the minute.
    args = [str(cloacinactl()), "serve", "--bind", f"127.0.0.1:{port}", "--database-url", db.url,
            "--auth-failures-per-minute", "1000000"]
    if db.schema:
        args += ["--schema", db.schema]
    server = subprocess.Popen(args, env=dict(os.environ, CLOACINA_TOKEN=TOKEN, RUST_LOG="warn"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return wait_ready(server, port)


def test_the_api_holds_to_its_document_under_fuzzing(db, tmp_path):
    with cloaca.WorkflowBuilder("fuzz_ok"):
        @cloaca.task()
        def step(context):
            context.set("done", True)
            return context

    with cloaca.WorkflowBuilder("fuzz_bad"):
        @cloaca.task(retry_attempts=1)
        def broken(context):
            raise RuntimeError("broken on purpose")

    with db.runner() as runner:
        done = runner.execute("fuzz_ok", cloaca.Context({"from": "fuzz"}))
        runner.execute("fuzz_bad", cloaca.Context())
        runner.register_cron_workflow("fuzz_ok", "0 3 * * *", "UTC")
        schedule = runner.list_cron_schedules()[0]["id"]
        config = tmp_path / "schemathesis.toml"
        config.write_text(f"""
generation.max-examples = 25

[dictionaries]
workflows = {{ values = ["fuzz_ok", "fuzz_bad"] }}

[parameters]
"body.workflow" = {{ dictionary = "workflows", probability = 0.6 }}

[[operations]]
include-path-regex = "^/api/v1/runs/"
parameters = {{ "path.id" = "{done.execution_id}" }}

[[operations]]
include-path-regex = "^/api/v1/schedules/"
parameters = {{ "path.id" = "{schedule}" }}
""")
        port = free_port()
        server = serve(db, port)
        try:
            run = subprocess.run(
                [schemathesis(), "--config-file", str(config), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
                 "--checks", CHECKS, "--header", f"Authorization: Bearer {TOKEN}", "--workers", "2",
                 # The event streams never end on their own (their own test reads them).
                 "--exclude-path-regex", "/events$",
                 "--phases", "coverage,fuzzing,stateful", "--request-timeout", "20", "--no-color"],
                capture_output=True, text=True, cwd=tmp_path, timeout=600)
            # The fuzzer reached the core: it started runs of the registered workflows.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/runs?limit=500", timeout=10) as r:
                started = len(json.load(r)["runs"]) - 2
        finally:
            server.terminate()
            log = server.communicate(timeout=60)[1]
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert "passed" in report and " failed" not in report, report[-3000:]
    assert "panicked" not in log, log
    assert started > 0, f"no run was started by the fuzzer: it never got past validation\n{report[-4000:]}"
