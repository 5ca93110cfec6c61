"""The version matrix's spread of the cross-process tests' server set-ups
(``noxfile.SERVER_SETUPS``): every pair names set-ups that exist, every set-up runs on
some pair, and ``--server-setups`` keeps exactly those it names, in both modules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from .site_process import server_setups
from .test_graceful_stop import SERVERS as STOPPED

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.any_database


def _noxfile():
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
