"""The built module: importable, typed, and self-contained (no libpq or OpenSSL needed at run
time: both are linked in statically)."""

import pathlib
import shutil
import subprocess

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
