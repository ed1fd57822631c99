"""The tutorials in examples/ (mirroring upstream cloaca's six) run on both backends."""

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import POSTGRES_URL

EXAMPLES = pathlib.Path(__file__).parent.parent / "examples"
TUTORIALS = sorted(p.name for p in EXAMPLES.glob("0*.py"))


def test_all_six_are_here():
    assert len(TUTORIALS) == 6, TUTORIALS


@pytest.mark.parametrize("tutorial", TUTORIALS)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_tutorial_runs(tutorial, backend, tmp_path):
    env = dict(os.environ)
    if backend == "postgres":
        env["DATABASE_URL"] = POSTGRES_URL
    else:
        env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, str(EXAMPLES / tutorial)], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"{tutorial} on {backend}:\n{out.stdout}\n{out.stderr}"
