"""The version matrix's spread of the cross-process tests' server set-ups
(``noxfile.SERVER_SETUPS``): every pair names set-ups that exist, every set-up runs on
some pair, and ``--server-setups`` keeps exactly those it names, in both modules."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .site_process import server_setups
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


def _collected(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0",
         "--collect-only", "-q", "tests/test_multiprocess.py", "tests/test_graceful_stop.py",
         *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_server_setups_keeps_only_the_named_ones_and_refuses_unknown_names():
    done = _collected("--server-setups", "gunicorn-locmem,uwsgi-threads,sync")
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    params = {line.rsplit("[", 1)[1].rstrip("]") for line in ids if "[" in line}
    assert params == {"gunicorn-locmem", "uwsgi-threads", "sync"}, done.stdout
    assert any(line.startswith("tests/test_graceful_stop.py") for line in ids)
    assert any("20_s_behind" in line for line in ids)  # not a set-up test: kept
    refused = _collected("--server-setups", "nginx")
    assert refused.returncode != 0 and "no set-up named nginx" in refused.stderr


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
