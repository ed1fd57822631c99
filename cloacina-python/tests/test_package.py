"""The built module: importable, typed, and self-contained (no libpq or OpenSSL needed at run
time: both are linked in statically)."""

import pathlib
import shutil
import subprocess
import sys

import cloaca


def test_the_module_needs_no_postgres_client_library():
    module = pathlib.Path(cloaca.__file__)
    if module.name == "__init__.py":  # an editable install: the extension sits beside it
        module = next(module.parent.glob("cloaca*.so"))
    assert shutil.which("ldd"), "ldd is needed to inspect the module"
    linked = subprocess.run(["ldd", str(module)], capture_output=True, text=True, check=True).stdout
    for library in ("libpq", "libssl", "libcrypto", "libsqlite3"):
        assert library not in linked, f"{module.name} links {library}:\n{linked}"


def test_stubs_and_docstrings_ship():
    package = pathlib.Path(cloaca.__file__).parent
    assert (package / "__init__.pyi").exists() and (package / "py.typed").exists()
    assert "DefaultRunner" in (package / "__init__.pyi").read_text()
    assert "retry_attempts" in cloaca.task.__doc__
    assert cloaca.DefaultRunner.__doc__ and cloaca.Context.get.__doc__


def test_the_stubs_check_the_examples_and_catch_mistakes(tmp_path):
    """mypy with the shipped stubs: the tutorials type-check; a wrong argument type and a
    misspelled method are reported."""
    mypy = [sys.executable, "-m", "mypy", "--no-incremental", "--check-untyped-defs", "--cache-dir", str(tmp_path)]
    examples = pathlib.Path(__file__).parent.parent / "examples"
    clean = subprocess.run(mypy + [str(examples)], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    bad = tmp_path / "bad.py"
    bad.write_text('import cloaca\ncloaca.DefaultRunner(1).execute_now("x")\n')
    out = subprocess.run(mypy + [str(bad)], capture_output=True, text=True).stdout
    assert 'incompatible type "int"; expected "str"' in out and 'has no attribute "execute_now"' in out, out
