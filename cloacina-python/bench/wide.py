"""Python no-op task throughput: one pipeline of BENCH_TASKS independent no-op Python tasks
(default 10,000), 16 at a time, pool of 8 (the settings of the Rust `wide` benchmark), run
BENCH_RUNS times (default 3) on each backend (BENCH_BACKEND=sqlite|postgres for one).

    python cloacina-python/bench/wide.py
    cargo bench -p cloacina --bench engine   # CLOACINA_BENCH_ONLY=wide: the Rust figure, same machine

Prints backend, tasks, concurrency, then tasks/s: median (min-max) of the runs, creation to end.
"""

import os
import statistics
import tempfile
import time
import uuid

import cloaca

TASKS = int(os.environ.get("BENCH_TASKS", "10000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
POSTGRES_URL = os.environ.get("CLOACINA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def noop(context):
    return context


def main():
    with cloaca.WorkflowBuilder("py_wide"):
        for i in range(TASKS):
            cloaca.task(id=f"t{i}")(noop)
    backends = [os.environ["BENCH_BACKEND"]] if "BENCH_BACKEND" in os.environ else ["sqlite", "postgres"]
    for backend in backends:
        schema = None
        if backend == "sqlite":
            url = f"sqlite://{tempfile.mkdtemp()}/bench.db"
        else:
            url, schema = POSTGRES_URL, f"bench_py_{uuid.uuid4().hex[:8]}"
        config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=16, db_pool_size=8, schema=schema)
        rates = []
        with cloaca.DefaultRunner.with_config(url, config) as runner:
            for _ in range(RUNS):
                start = time.monotonic()
                result = runner.execute("py_wide")
                assert result.status == "Completed", result
                rates.append(TASKS / (time.monotonic() - start))
        if schema:
            import subprocess

            subprocess.run(["psql", url, "-qc", f'DROP SCHEMA "{schema}" CASCADE'], capture_output=True)
        print(f"{backend:<9} python wide {TASKS} tasks, 1 runner x 16: {statistics.median(rates):.0f} tasks/s "
              f"(min {min(rates):.0f}, max {max(rates):.0f}, median of {RUNS})", flush=True)


if __name__ == "__main__":
    main()
