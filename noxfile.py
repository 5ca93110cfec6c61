"""The version matrix: the whole suite on each supported (Python, Django) pair.

``make test-matrix`` (and CI, after ``make test``) runs ``nox``. Each session is a
fresh virtualenv of that Python with the dev extra and that Django, on SQLite (the
default suite; ``make test-postgres`` covers PostgreSQL on the main interpreter).
The Pythons are the ones pyenv has installed; nox never downloads one.

nox rather than tox: the matrix is three explicit pairs, not a product of factors,
and a Python file says that (and finds pyenv's interpreters) more plainly than
tox's factor conditionals; nox is one more dev dependency, installed by ``make``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

#: (Python, Django): the oldest supported pair, then the newest Django on newer Pythons.
MATRIX = [("3.10", "5.2"), ("3.12", "6.0"), ("3.13", "6.1")]

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "venv"
nox.options.download_python = "never"
nox.options.reuse_existing_virtualenvs = True


def interpreter(version: str) -> str:
    """pyenv's interpreter of that version when installed, else whatever nox finds."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python"))
    return found[-1] if found else version


@nox.session
@nox.parametrize(
    ("python", "django"),
    [(interpreter(python), django) for python, django in MATRIX],
    ids=[f"py{python}-django{django}" for python, django in MATRIX],
)
def tests(session: nox.Session, django: str) -> None:
    session.install("-e", ".[dev]", f"Django=={django}.*")
    session.run("python", "-c", "import django, sys; print(sys.version, django.get_version())")
    # In parallel as `make test` is (pytest-xdist; WORKERS=0 for one process).
    workers = os.environ.get("WORKERS", "auto")
    # The fuzz tests' examples are derandomized (tests/conftest.py): every run draws the
    # same ones, and `make test` and `make test-postgres` draw them all. Here, where the
    # question is the versions, a quarter of them (FUZZ_SCALE=1 for all).
    env = {"FUZZ_SCALE": os.environ.get("FUZZ_SCALE", "0.25")}
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-n", workers, *session.posargs,
        env=env,
    )  # fmt: skip
