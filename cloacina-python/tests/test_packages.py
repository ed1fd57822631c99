"""Python workflow packages run by `cloacinactl daemon` (a real child process) in Python worker
processes, on SQLite and PostgreSQL: the repository's example package
(`examples/packages/python-packaged`) is packed, loaded and run; its packaged trigger fires; it is
replaced mid-run and removed; the daemon is killed mid-run; bad packages are refused clearly; and
the same package uploaded to `cloacinactl serve` (API, dashboard and worker in one process) runs
there."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from conftest import free_port, wait_ready, wait_until

HERE = pathlib.Path(__file__).parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "examples" / "packages" / "python-packaged"
CTL = pathlib.Path(os.environ.get("CLOACINA_CTL", REPO / "target" / "debug" / "cloacinactl"))


class Daemon:
    """`cloacinactl` on a test database, and a daemon watching a directory."""

    def __init__(self, db, tmp_path):
        self.db, self.tmp = db, tmp_path
        self.watched = tmp_path / "watched"
        self.inbox = tmp_path / "inbox"
        self.watched.mkdir()
        self.inbox.mkdir()
        self.env = dict(os.environ, CLOACINA_PYTHON=sys.executable, CLOACINA_PACKAGE_CACHE=str(tmp_path / "cache"),
                        PIPELINE_INBOX=str(self.inbox), RUST_LOG="info")
        self.env.pop("DATABASE_URL", None)
        self.child = None
        self.logs = 0

    def ctl(self, *args):
        cmd = [str(CTL), "--database-url", self.db.url] + (["--schema", self.db.schema] if self.db.schema else [])
        return subprocess.run(cmd + list(args), env=self.env, capture_output=True, text=True)

    def ok(self, *args):
        out = self.ctl(*args)
        assert out.returncode == 0, f"{args}: {out.stderr}"
        return out.stdout

    def start(self):
        self.logs += 1
        self.log = self.tmp / f"daemon{self.logs}.log"
        cmd = [str(CTL), "--database-url", self.db.url] + (["--schema", self.db.schema] if self.db.schema else [])
        cmd += ["daemon", "--packages", str(self.watched), "--poll-interval", "0.2", "--lease-duration", "3"]
        self.child = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))

    def logged(self):
        return self.log.read_text()

    def packages(self):
        out = self.ctl("package", "list", "--json")
        return json.loads(out.stdout)["data"] if out.returncode == 0 else []

    def status_of(self, name, version):
        return next((p["status"] for p in self.packages() if p["package_name"] == name and p["version"] == version), None)

    def run(self, context="{}"):
        return self.ok("runs", "start", "data_pipeline", "--context", context).split()[2]

    def show(self, run):
        return json.loads(self.ok("runs", "show", run, "--json"))["data"]

    def stop(self):
        self.child.send_signal(signal.SIGTERM)
        assert self.child.wait(timeout=60) == 0, self.logged()


def variant(tmp_path, version=None, release=None, manifest_extra="", files=None):
    """The example package copied, with a version, a release marker, manifest lines or files
    changed; packed by `cloacinactl package pack`."""
    src = tmp_path / f"src-{len(list(tmp_path.glob('src-*')))}"
    shutil.copytree(EXAMPLE, src)
    manifest = (src / "package.toml").read_text()
    if version:
        manifest = manifest.replace('version = "0.1.0"', f'version = "{version}"')
    (src / "package.toml").write_text(manifest + manifest_extra)
    if release:
        tasks = src / "workflow" / "data_pipeline" / "tasks.py"
        tasks.write_text(tasks.read_text().replace('RELEASE = "one"', f'RELEASE = "{release}"'))
    for rel, text in (files or {}).items():
        (src / rel).write_text(text)
    out = src.with_suffix(".cloacina")
    packed = subprocess.run([str(CTL), "package", "pack", str(src), "--out", str(out)], capture_output=True, text=True)
    assert packed.returncode == 0, packed.stderr
    return out


def drop_in(daemon, archive, name="pipeline.cloacina"):
    partial = daemon.watched / f".{name}.partial"
    shutil.copy(archive, partial)
    partial.rename(daemon.watched / name)


def test_a_python_package_lives_through_the_daemon(db, tmp_path):
    d = Daemon(db, tmp_path)
    drop_in(d, variant(tmp_path))
    d.start()
    try:
        wait_until("the package to load", lambda: d.status_of("data-pipeline", "0.1.0") == "loaded", timeout=60)
        first = d.run()
        wait_until("the first run", lambda: d.show(first)["run"]["status"] == "Completed")
        assert d.show(first)["output"]["report"] == {"count": 3, "release": "one", "file": None}

        # The packaged trigger: a file in the inbox starts a run with its name.
        (d.inbox / "orders.csv").write_text("x")
        fired = wait_until("the trigger's run", lambda: next(
            (r for r in json.loads(d.ok("runs", "list", "--json"))["data"]["runs"]
             if r["run"]["status"] == "Completed" and r["run"]["id"] != first), None))
        assert d.show(fired["run"]["id"])["output"]["report"]["file"] == "orders.csv"

        # Replaced mid-run: the run in flight finishes on 0.1.0, the next starts on 0.2.0.
        slow = d.run('{"delay_s": 3}')
        wait_until("the slow task to run", lambda: any(
            t["task"]["status"] == "Running" for t in d.show(slow)["tasks"]))
        drop_in(d, variant(tmp_path, version="0.2.0", release="two"))
        wait_until("0.2.0 to load", lambda: d.status_of("data-pipeline", "0.2.0") == "loaded", timeout=60)
        wait_until("0.1.0 recorded removed", lambda: d.status_of("data-pipeline", "0.1.0") == "removed")
        following = d.run()
        wait_until("both runs", lambda: d.show(slow)["run"]["status"] == "Completed"
                   and d.show(following)["run"]["status"] == "Completed")
        assert d.show(slow)["output"]["report"]["release"] == "one"
        assert d.show(following)["output"]["report"]["release"] == "two"

        # Removed: no new runs (a conflict, exit code 4).
        (d.watched / "pipeline.cloacina").unlink()
        wait_until("0.2.0 removed", lambda: d.status_of("data-pipeline", "0.2.0") == "removed")
        refused = d.ctl("runs", "start", "data_pipeline")
        assert refused.returncode == 4 and "starts no new runs" in refused.stderr, refused.stderr
    finally:
        d.stop()


def test_an_uploaded_python_package_runs_on_the_server(db, tmp_path):
    """`serve --mode all`: a Python package uploaded through the API is loaded by the server's
    worker into a Python worker process; a run started through the API completes there; deleted,
    it starts no new runs."""
    token = "python-upload-token-0123456789"
    port = free_port()
    env = dict(os.environ, CLOACINA_PYTHON=sys.executable, CLOACINA_PACKAGE_CACHE=str(tmp_path / "cache"),
               PIPELINE_INBOX=str(tmp_path), CLOACINA_TOKEN=token, RUST_LOG="info")
    env.pop("DATABASE_URL", None)
    args = [str(CTL), "--database-url", db.url] + (["--schema", db.schema] if db.schema else [])
    migrated = subprocess.run(args + ["db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stderr
    args += ["serve", "--bind", f"127.0.0.1:{port}", "--poll-interval", "0.2"]
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)

    def call(method, path, body=None, content_type="application/json"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/{path}", data=body, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    try:
        wait_ready(server, port)
        archive = variant(tmp_path).read_bytes()
        status, body = call("POST", "packages", archive, "application/octet-stream")
        assert status == 201, body
        package = body["package"]["id"]
        assert body["package"]["package_name"] == "data-pipeline"
        wait_until("the worker to load it", lambda: call("GET", f"packages/{package}")[1]["package"]["status"] == "loaded",
                   timeout=90)
        # The server's worker runs it in a Python worker process (a runner of its own): that
        # runner's row says serving; the server's own runner, which hosts no Python, is not listed.
        wait_until("the Python worker to serve it", lambda: [
            w["state"] for w in call("GET", f"packages/{package}")[1]["workers"]] == ["serving"])

        status, started = call("POST", "runs", json.dumps({"workflow": "data_pipeline", "context": {}}).encode())
        assert status == 201, started
        run = started["id"]
        shown = wait_until("the run to complete", lambda: (
            lambda d: d if d["run"]["status"] in ("Completed", "Failed") else None)(call("GET", f"runs/{run}")[1]),
            timeout=60)
        assert shown["run"]["status"] == "Completed", shown
        assert shown["output"]["report"] == {"count": 3, "release": "one", "file": None}

        status, _ = call("DELETE", f"packages/{package}")
        assert status == 200
        wait_until("new runs to be refused", lambda: call(
            "POST", "runs", json.dumps({"workflow": "data_pipeline"}).encode())[0] == 409)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()


def test_a_killed_daemons_python_run_still_finishes(db, tmp_path):
    d = Daemon(db, tmp_path)
    drop_in(d, variant(tmp_path))
    d.start()
    wait_until("the package to load", lambda: d.status_of("data-pipeline", "0.1.0") == "loaded", timeout=60)
    run = d.run('{"delay_s": 2}')
    wait_until("the task to run", lambda: any(t["task"]["status"] == "Running" for t in d.show(run)["tasks"]))
    d.child.send_signal(signal.SIGKILL)
    d.child.wait()
    d.start()
    try:
        wait_until("the run to finish", lambda: d.show(run)["run"]["status"] == "Completed", timeout=60)
    finally:
        d.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_python_packages_are_refused_with_one_clear_line(backend, tmp_path):
    from conftest import Db

    d = Daemon(Db(backend, tmp_path), tmp_path)
    bad = {
        "too-new.cloacina": variant(tmp_path, version="0.3.0", manifest_extra='requires_python = ">=99"\n'),
        "shadow.cloacina": variant(tmp_path, version="0.4.0", files={"workflow/json.py": "x = 1\n"}),
        "broken.cloacina": variant(tmp_path, version="0.5.0", files={
            "workflow/data_pipeline/tasks.py": "import cloaca\nraise RuntimeError('the import fails')\n"}),
    }
    for name, archive in bad.items():
        drop_in(d, archive, name)
    d.start()
    try:
        expected = {
            "too-new.cloacina": "requires Python >=99",
            "shadow.cloacina": "shadow the standard library",
            "broken.cloacina": "RuntimeError: the import fails",
        }
        wait_until("every refusal", lambda: all(
            any(name in line and why in line for line in d.logged().splitlines()) for name, why in expected.items()))
        assert [p["status"] for p in d.packages()] == ["failed", "failed", "failed"], d.packages()
        assert d.child.poll() is None, "the daemon keeps running"
    finally:
        d.stop()


def test_the_database_password_never_reaches_a_workers_command_line(tmp_path):
    """The worker's spec (with the database URL) travels in its environment, which only its user
    can read, not in its arguments, which every user of the host can."""
    from conftest import Db, POSTGRES_URL

    db = Db("postgres", tmp_path)
    db.url = POSTGRES_URL.replace("postgres://postgres@", "postgres://postgres:s3cret-pw@", 1)
    assert "s3cret-pw" in db.url, "the test URL must carry a password (trust auth ignores it)"
    d = Daemon(db, tmp_path)
    drop_in(d, variant(tmp_path))
    d.start()
    try:
        wait_until("the package to load", lambda: d.status_of("data-pipeline", "0.1.0") == "loaded", timeout=60)
        workers = []
        for proc in pathlib.Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "_serve_package" in cmdline:
                workers.append(cmdline)
        assert workers, "the worker runs"
        assert not any("s3cret-pw" in c for c in workers), workers
        assert "s3cret-pw" not in d.logged()
    finally:
        d.stop()
        db.drop()
