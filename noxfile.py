"""The version matrix: the suite on each supported (Python, Django) pair.

``make test-matrix`` (and CI, after ``make test``) runs ``nox``. Each session is a
fresh virtualenv of that Python with the dev extra and that Django, with a quarter of
the fuzz examples; the oldest two pairs on SQLite (the default suite), the newest on
PostgreSQL (below says why). The oldest pair leaves the browser tests to ``make test``,
the tests whose outcome no version can change (marker ``one_version``) are left to it
on every pair, and the cross-process tests' server set-ups and the end-to-end tests are
spread over the pairs.
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
#: The Django of `make test`'s virtualenv: on this project's Python 3.11, pip installs
#: Django 5.2 (Django 6 needs Python 3.12).
MAIN_DJANGO = "5.2"

#: The cross-process tests' server set-ups, spread over the pairs: `make test` runs them
#: all (Python 3.11, Django 5.2). tests/test_multiprocess.py serves with five (each about
#: 13 s of a worker, mostly waiting for a change to reach every process):
#: runserver is Django's own (both Django 6 pairs), uWSGI is built against each Python's
#: C API (threads on the newest two, where threading changed), and gunicorn, pure
#: Python, on the oldest and the newest (with Redis once). tests/test_graceful_stop.py
#: stops three servers after a flood (about 12 s each): gunicorn's sync and gthread
#: workers and `make serve`'s Granian, one per pair. ALL_SETUPS=1 runs all on every pair.
SERVER_SETUPS = {
    "5.2": ["gunicorn-locmem", "uwsgi-no-threads", "sync"],
    "6.0": ["gunicorn-redis", "runserver-locmem", "uwsgi-threads", "gthread"],
    "6.1": ["gunicorn-locmem", "runserver-locmem", "uwsgi-threads", "make-serve"],
}

#: The end-to-end tests (marker ``end_to_end``: a runbook run as written in real
#: processes, a new startproject site, a CLI script's every answer), spread over the pairs
#: by module as the server set-ups are: each takes 8 to 21 s of a worker, most of it
#: Django starting for each of its commands and servers, and most of what a version
#: could change on their way the suite's in-process tests meet on every pair (the same
#: commands, views and services).
#: `make test` runs them all; ALL_SETUPS=1 runs them on every pair too. The newest pair
#: takes the new site (issue 21's adopter was on Python 3.13 and Django 6.1).
END_TO_END = {
    "5.2": ["deployment", "token_doors", "cli"],
    "6.0": ["public_key_runbook", "cli_public_keys", "multiprocess_keys"],
    "6.1": ["adoption", "cache_identity", "cli_origins"],
}

#: The pair that runs on PostgreSQL (``POSTGRES_URL``, as ``make test-postgres``; 127.0.0.1:5432
#: by default): the newest, so that the newest Django meets PostgreSQL, where ``make
#: test-postgres`` runs Django 5.2 on the main interpreter. CI runs this instead of a
#: separate ``make test-postgres`` (the suite on PostgreSQL is about as long as on
#: SQLite: one run of the suite fewer). MATRIX_POSTGRES=0 keeps every pair on SQLite.
POSTGRES_PAIR = "6.1"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/trusted_identity"

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
    # same ones, and `make test` draws them all. Here, where the question is the
    # versions, a quarter of them, as `make test-postgres` does (FUZZ_SCALE=1 for all).
    env = {"FUZZ_SCALE": os.environ.get("FUZZ_SCALE", "0.25")}
    if django == POSTGRES_PAIR and os.environ.get("MATRIX_POSTGRES", "1") != "0":
        env["DATABASE_URL"] = os.environ.get("POSTGRES_URL", POSTGRES_URL)
    # Django 5.2's admin is driven in Chromium by `make test` (Python 3.11): the page the
    # browser gets is Django's and ours, which the Python version doesn't change. So the
    # oldest pair, whose question is Python 3.10, leaves the browser tests to it; Django
    # 6.0 and 6.1 run them here (BROWSER=1 runs them on every pair).
    # What no Python or Django version can change (the source's import layout, the docs
    # build, the package's files, other languages' programs alone: marker one_version)
    # `make test` checks once.
    left = ["one_version"]
    if django == MAIN_DJANGO and not os.environ.get("BROWSER"):
        left.append("browser")
    marks = ["-m", " and ".join(f"not {mark}" for mark in left)]
    setups = ["--server-setups", ",".join(SERVER_SETUPS[django])]
    setups += ["--end-to-end", ",".join(END_TO_END[django])]
    if os.environ.get("ALL_SETUPS"):
        setups = []
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-n", workers, *marks, *setups,
        *session.posargs, env=env,
    )  # fmt: skip
