"""Fixtures: every database test runs on SQLite and on PostgreSQL (CLOACINA_TEST_POSTGRES_URL,
default postgres://postgres@127.0.0.1:5432/postgres; unreachable means failure, not a skip)."""

import os
import subprocess
import uuid

import pytest

import cloaca

POSTGRES_URL = os.environ.get("CLOACINA_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


class Db:
    """A database private to one test: a SQLite file, or a PostgreSQL schema."""

    def __init__(self, backend, tmp_path):
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite://{tmp_path / 'test.db'}"
            self.schema = None
        else:
            self.url = POSTGRES_URL
            self.schema = f"py_{uuid.uuid4().hex[:12]}"

    def config(self, **settings):
        """Runner settings on this database, quick to notice work (overridable)."""
        settings.setdefault("scheduler_poll_interval_ms", 20)
        return cloaca.DefaultRunnerConfig(schema=self.schema, **settings)

    def runner(self, **settings):
        return cloaca.DefaultRunner.with_config(self.url, self.config(**settings))

    def drop(self):
        if self.schema:
            subprocess.run(["psql", self.url, "-qc", f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'], check=False,
                           capture_output=True)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    d = Db(request.param, tmp_path)
    yield d
    d.drop()


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test defines its own workflows."""
    cloaca.clear_workflow_registry()
    yield
    cloaca.clear_workflow_registry()


def wait_until(what, probe, timeout=30.0, interval=0.05):
    """Polls `probe` until it returns something truthy (fails after `timeout` seconds)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(server, port, timeout=60.0):
    """Waits until the `cloacinactl serve` child `server` answers /readyz on `port` (fails, with
    what it printed on stderr, if it exits first)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        assert server.poll() is None, server.stderr.read() if server.stderr else "the server exited"
        assert time.monotonic() < deadline, f"the server did not get ready within {timeout} s"
        time.sleep(0.05)
