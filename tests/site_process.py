"""The environment of the example project run in a process of its own under test (real
servers, the CLI, ``migrate``): one place for what every such process needs, so the
tests that start them say only what is theirs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from trusted_identity.crypto import generate_key

ROOT = Path(__file__).resolve().parent.parent

#: What the suite's environment may carry that a site under test must not inherit: its
#: own database and cache come from the test, its settings from the keys below.
_NOT_INHERITED = ("DATABASE_URL", "CACHE_URL")


def site_env(label: str, database: Path | None = None, **settings: str) -> dict[str, str]:
    """This process's environment less any ``TRUSTED_IDENTITY_*``, ``DATABASE_URL`` or
    ``CACHE_URL``, with the example project's settings, DEBUG off, a secret key named for
    ``label``, a new encryption key and the SQLite file ``database``; ``settings`` add to
    them or replace them."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TRUSTED_IDENTITY") and key not in _NOT_INHERITED
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_READ_DOT_ENV": "0",
            "DEBUG": "0",
            "SECRET_KEY": f"{label}-test-" + "k" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "0",
            "TRUSTED_IDENTITY_ENCRYPTION_KEYS": generate_key(),
        }
    )
    if database is not None:
        env["DATABASE_URL"] = f"sqlite:///{database}"
    env.update(settings)
    return env


def make_serve_command(port: int) -> str:
    """The server command ``make serve`` runs (its last line, the checks before it left
    out) on 127.0.0.1:``port`` with this interpreter's executables: the Makefile's own
    words, so a test of it serves as ``make serve`` does."""
    venv = Path(sys.executable).parent.parent
    args = ["make", "-s", "-n", "serve", f"VENV={venv}", "HOST=127.0.0.1", f"PORT={port}"]
    done = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "MAKEFLAGS": "", "MAKELEVEL": ""},
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def wait_until_listening(port: int, what: str, seconds: float = 30) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; fail the test
    naming ``what`` if nothing does within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{what} did not start"
            time.sleep(0.2)


#: What each server prints once a worker has loaded the application.
WORKER_READY = {"granian": "Started worker-", "uvicorn": "Application startup complete"}


def wait_until_workers_started(
    log: Path, server: subprocess.Popen, ready: str, workers: int, what: str, seconds: float = 60
) -> None:
    """Return once ``log`` (the server's output) shows ``workers`` lines with ``ready``.

    Listening is not enough under Granian: it accepts connections while a worker still
    loads Django, and a worker stopped then ignores the stop and is killed only after
    ``--workers-kill-timeout`` (30 s under ``make serve``). A test that starts and stops
    a server quickly on a busy machine met exactly that."""
    deadline = time.monotonic() + seconds
    while log.read_text(errors="replace").count(ready) < workers:
        assert server.poll() is None, f"{what} exited: {log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"{what} did not start its {workers} workers"
        time.sleep(0.1)


def server_setups() -> dict[str, tuple[str, str]]:
    """Every server set-up ``--server-setups`` can name (``noxfile.SERVER_SETUPS`` spreads
    them over the version matrix): name -> (its test module, the parameter naming it)."""
    from .test_graceful_stop import SERVERS
    from .test_multiprocess import SETUPS

    return {name: ("test_multiprocess.py", "deployment") for name in SETUPS} | {
        name: ("test_graceful_stop.py", "served") for name in SERVERS
    }
