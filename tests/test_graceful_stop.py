"""A graceful stop loses no count (issue 19): a server of the example project, a flood
of forged starts each with a new client version, SIGTERM to the server's process group
right after (as systemd sends it), and every start answered is in the database once
the workers have exited within the graceful timeout. The servers: ``make serve``'s, run
from the Makefile's own command (Granian: each worker writes its buffer through the
runtime's multiprocessing finalizer), and gunicorn's gthread and sync workers (they
write it at exit: ``atexit`` runs as the worker leaves through ``sys.exit``)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from .cli_host import cli_for
from .isolation import free_port
from .migrated import migrated_sqlite
from .site_process import (
    WORKER_READY,
    make_serve_command,
    site_env,
    wait_until_listening,
    wait_until_workers_started,
)

pytestmark = pytest.mark.any_database  # the server's own SQLite file

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
STARTS = 3000
CLIENTS = 8
#: gunicorn's default graceful timeout: the workers must be gone by then.
GRACEFUL_TIMEOUT = 30
#: gunicorn's worker classes whose exit writes the buffer (project/gunicorn.conf.py's is
#: gthread; sync needs one thread, or gunicorn makes it gthread).
WORKERS = {"gthread": [], "sync": ["-k", "sync", "--threads", "1"]}
#: The servers stopped here, by the names ``--server-setups`` chooses among them with.
SERVERS = ("make-serve", *WORKERS)


def server_command(kind: str, port: int) -> list[str]:
    if kind == "make-serve":
        return ["bash", "-c", make_serve_command(port)]
    return [str(GUNICORN), "-c", "project/gunicorn.conf.py", *WORKERS[kind], "project.wsgi"]


@pytest.fixture(params=SERVERS)
def served(request, tmp_path):
    env = site_env(
        "graceful-stop", tmp_path / "graceful.sqlite3",
        TRUSTED_IDENTITY_RATE_LIMIT="off", WEB_CONCURRENCY="2",
    )  # fmt: skip

    manage = cli_for(request, env)  # the CLI in a process of its own (tests/cli_host.py)

    migrated_sqlite(tmp_path / "graceful.sqlite3")  # as `manage.py migrate` makes it
    manage("trusted_identity", "create-space", "flood")
    open_key = manage("trusted_identity", "add-platform", "flood", "web")
    enforced_key = manage("trusted_identity", "add-platform", "flood", "ios")
    manage("trusted_identity", "enforce", "flood", "ios", "on", "--force", "--reason", "test")
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            server_command(request.param, port),
            cwd=ROOT,
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if request.param == "make-serve":  # the stop below must meet every worker booted
        wait_until_workers_started(log, server, WORKER_READY["granian"], 2, request.param)
    wait_until_listening(port, request.param)
    try:
        yield {"port": port, "keys": (open_key, enforced_key), "server": server, "manage": manage}
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def flood(port: int, keys: tuple[str, str]) -> Counter:
    """``STARTS`` forged starts over ``CLIENTS`` kept-alive connections, half of them to
    the enforced platform; the statuses answered."""
    answers: Counter = Counter()
    lock = threading.Lock()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: Counter = Counter()
        for n in range(number, STARTS, CLIENTS):
            body = json.dumps({"userId": f"forged-{n}", "signed": f"{n:064d}"})
            headers = {
                "Content-Type": "application/json",
                "X-Api-Key": keys[n % 2],
                "X-App-Version": f"junk-{n}",
                "X-Sdk-Version": f"sdk-{n}",
            }
            connection.request("POST", "/trusted-identity/v1/sessions", body, headers)
            response = connection.getresponse()
            response.read()
            mine[keys[n % 2], response.status] += 1
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
        connection.close()
        with lock:
            answers.update(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


COUNTED = """
from django.db.models import Sum
from trusted_identity.models import DailyDetailCount, OutcomeCount, Platform
result = {}
for platform in Platform.objects.all():
    outcomes = OutcomeCount.objects.filter(platform=platform)
    versions = DailyDetailCount.objects.filter(platform=platform, dimension="app_version")
    result[platform.api_key] = {
        "outcomes": {o: outcomes.filter(outcome=o).aggregate(n=Sum("count"))["n"] or 0
                     for o in ("invalid", "rejected")},
        "versions": versions.aggregate(n=Sum("count"))["n"] or 0,
    }
print(json.dumps(result))
"""


def test_sigterm_right_after_a_flood_loses_no_count(served):
    answers = flood(served["port"], served["keys"])
    stopped = time.monotonic()
    os.killpg(served["server"].pid, signal.SIGTERM)  # the master and its workers
    served["server"].wait(timeout=GRACEFUL_TIMEOUT + 15)
    assert time.monotonic() - stopped < GRACEFUL_TIMEOUT  # no worker was killed
    open_key, enforced_key = served["keys"]
    assert answers == {(open_key, 201): STARTS // 2, (enforced_key, 403): STARTS // 2}
    counted = json.loads(
        served["manage"]("shell", "-c", "import json\n" + COUNTED).splitlines()[-1]
    )
    assert counted[open_key] == {
        "outcomes": {"invalid": STARTS // 2, "rejected": 0},
        "versions": STARTS // 2,
    }
    assert counted[enforced_key] == {
        "outcomes": {"invalid": 0, "rejected": STARTS // 2},
        "versions": STARTS // 2,
    }
