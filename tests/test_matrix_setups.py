"""The version matrix's spread of the cross-process tests' server set-ups
(``noxfile.SERVER_SETUPS``) and of the end-to-end tests (``noxfile.END_TO_END``): every
pair names set-ups and modules that exist, each runs on some pair (an end-to-end module
on exactly one), and ``--server-setups`` and ``--end-to-end`` keep exactly those they
name."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .site_process import server_setups
from .spread import end_to_end_modules
from .test_graceful_stop import SERVERS as STOPPED

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.any_database


@functools.cache
def _noxfile():
    """noxfile.py, loaded once: each load registers its sessions with nox again."""
    pytest.importorskip("nox")
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_pair_names_known_set_ups_and_every_set_up_runs_somewhere():
    noxfile = _noxfile()
    assert set(noxfile.SERVER_SETUPS) == {django for _python, django in noxfile.MATRIX}
    named = [name for names in noxfile.SERVER_SETUPS.values() for name in names]
    assert set(named) <= set(server_setups())
    assert set(named) == set(server_setups())  # each set-up on at least one pair as well
    for names in noxfile.SERVER_SETUPS.values():  # a graceful stop on every pair
        assert set(STOPPED) & set(names)


def test_every_end_to_end_module_runs_on_exactly_one_pair():
    noxfile = _noxfile()
    assert set(noxfile.END_TO_END) == {django for _python, django in noxfile.MATRIX}
    named = [name for names in noxfile.END_TO_END.values() for name in names]
    assert len(named) == len(set(named))  # not twice
    assert set(named) == end_to_end_modules()  # each one, and nothing else
    assert all(noxfile.END_TO_END.values())  # every pair some


def _collected(*args: str, modules=("test_multiprocess.py", "test_graceful_stop.py")):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0",
         "--collect-only", "-q", *(f"tests/{module}" for module in modules), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


# pytest's own options, which no Python or Django version changes: make test alone runs it.
@pytest.mark.one_version
def test_server_setups_keeps_only_the_named_ones_and_refuses_unknown_names():
    done = _collected("--server-setups", "gunicorn-locmem,uwsgi-threads,sync")
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    params = {line.rsplit("[", 1)[1].rstrip("]") for line in ids if "[" in line}
    assert params == {"gunicorn-locmem", "uwsgi-threads", "sync"}, done.stdout
    assert any(line.startswith("tests/test_graceful_stop.py") for line in ids)
    assert any("20_s_behind" in line for line in ids)  # not a set-up test: kept
    refused = _collected("--server-setups", "nginx")
    assert refused.returncode != 0 and "no set-up named nginx" in refused.stderr


@pytest.mark.one_version
def test_end_to_end_keeps_only_the_named_modules_and_refuses_unknown_names():
    modules = ("test_cli_origins.py", "test_token_doors.py")
    everything = _collected(modules=modules)
    assert everything.returncode == 0, everything.stderr
    done = _collected("--end-to-end", "token_doors", modules=modules)
    kept = {line for line in done.stdout.splitlines() if "::" in line}
    dropped = {line for line in everything.stdout.splitlines() if "::" in line} - kept
    # The other module's end-to-end test alone is out; its in-process tests stay.
    assert dropped == {
        "tests/test_cli_origins.py::test_subprocess_scripts_see_empty_stdout_and_one_line_errors"
    }, dropped
    assert "tests/test_token_doors.py::test_subprocess_sign_token_prints_one_line" in kept
    refused = _collected("--end-to-end", "nginx", modules=modules)
    assert refused.returncode != 0 and "no module of end-to-end tests named nginx" in refused.stderr


class _SessionRecorder:
    """What a nox session function asks of its session, recorded instead of done."""

    posargs: list[str] = []

    def __init__(self):
        self.runs: list[tuple[tuple[str, ...], dict[str, str]]] = []

    def install(self, *args, **kwargs):
        pass

    def run(self, *args, env=None, **kwargs):
        self.runs.append((args, env or {}))


def _suite_run(noxfile, django: str) -> tuple[tuple[str, ...], dict[str, str]]:
    session = _SessionRecorder()
    noxfile.tests(session, django=django)
    (suite,) = [run for run in session.runs if "pytest" in run[0]]
    return suite


def test_the_newest_pair_is_the_run_on_postgresql_and_no_pair_repeats_one_version_tests(
    monkeypatch,
):
    """CI's suite on PostgreSQL is the newest pair (.ci/run runs no make test-postgres):
    it must get DATABASE_URL, and only it; every pair leaves the one_version tests to make
    test, and the oldest the browser tests."""
    for name in ("MATRIX_POSTGRES", "POSTGRES_URL", "BROWSER", "ALL_SETUPS", "FUZZ_SCALE"):
        monkeypatch.delenv(name, raising=False)
    noxfile = _noxfile()
    newest = noxfile.MATRIX[-1][1]
    assert newest == noxfile.POSTGRES_PAIR
    for _python, django in noxfile.MATRIX:
        args, env = _suite_run(noxfile, django)
        marks = args[len(args) - args[::-1].index("-m")].split(" and ")  # the last -m
        assert "not one_version" in marks
        assert ("not browser" in marks) == (django == noxfile.MAIN_DJANGO)
        database = env.get("DATABASE_URL", "")
        assert database.startswith("postgres://") == (django == newest), (django, env)
        assert env["FUZZ_SCALE"] == "0.25"
    monkeypatch.setenv("MATRIX_POSTGRES", "0")
    assert "DATABASE_URL" not in _suite_run(noxfile, newest)[1]
    monkeypatch.setenv("MATRIX_POSTGRES", "1")
    monkeypatch.setenv("POSTGRES_URL", "postgres://elsewhere:5433/ti")
    assert _suite_run(noxfile, newest)[1]["DATABASE_URL"] == "postgres://elsewhere:5433/ti"
