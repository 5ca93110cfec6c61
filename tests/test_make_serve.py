"""``make serve`` as an attacker meets it: the Makefile's own server command (Granian)
serving the example project with DEBUG off. Requests with hostile content that reach
the app get the contract's JSON; requests Granian can't parse as HTTP (and the few
well-formed ones its parser is stricter about: ``REFUSED_BY_GRANIAN``) are refused by
Granian itself, before the app, with a 4xx and an empty body (never a 5xx, an HTML
page or a traceback), and the server goes on answering. gunicorn's JSON
answers to those (``project/gunicorn.conf.py``) are ``tests/test_deployment.py``'s;
the graceful stop under ``make serve`` is ``tests/test_graceful_stop.py``'s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from trusted_identity import signing

from .cli_host import CliHost
from .isolation import free_port
from .migrated import migrated_sqlite
from .site_process import WORKER_READY, make_serve_command, site_env, wait_until_workers_started
from .test_deployment import malformed_requests
from .test_hostile_http import assert_contract_json, hostile_requests, send

pytestmark = pytest.mark.any_database  # the server's own SQLite file

ROOT = Path(__file__).resolve().parent.parent
GRANIAN = Path(sys.executable).with_name("granian")
#: Hostile requests that Granian's HTTP parser refuses itself (a Content-Length that is
#: negative or past 2**64, a Cookie header of DEL bytes): an empty 400, before the app.
#: gunicorn passes them to the app, which answers the contract's JSON.
REFUSED_BY_GRANIAN = {"negative-content-length", "huge-content-length", "garbage-cookie"}


@pytest.fixture(scope="module")
def make_serve(tmp_path_factory):
    if not GRANIAN.exists():
        pytest.skip("Granian is not installed (the dev extra has it)")
    database = tmp_path_factory.mktemp("make-serve") / "serve.sqlite3"
    env = site_env("make-serve", database)

    migrated_sqlite(database)
    host = CliHost(env)  # the CLI in a process of its own (tests/cli_host.py)
    try:
        host.ok("trusted_identity", "create-space", "acme")
        key = host.ok("trusted_identity", "add-platform", "acme", "ios")
        secret = host.ok("trusted_identity", "show-secret", "acme", "ios")
    finally:
        host.close()
    port = free_port()
    command = make_serve_command(port)
    assert "granian" in command  # make serve's default, as docs/production.md says
    log = tmp_path_factory.mktemp("make-serve-log") / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["bash", "-c", command], cwd=ROOT, env=env, start_new_session=True,
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    wait_until_workers_started(log, server, WORKER_READY["granian"], 2, "make serve's server")
    yield {"url": f"http://127.0.0.1:{port}", "port": port, "key": key, "secret": secret}
    os.killpg(server.pid, signal.SIGTERM)  # Granian's master and workers, as systemd stops it
    server.wait(timeout=40)


def test_hostile_content_gets_the_contract_json_or_granians_empty_400(make_serve):
    host = f"127.0.0.1:{make_serve['port']}"
    statuses = {}
    for name, raw in hostile_requests(host, make_serve["key"], make_serve["secret"]).items():
        status, headers, body = send(make_serve["url"], raw)
        if name in REFUSED_BY_GRANIAN:
            assert (status, body) == (400, b""), (name, status, body[:200])
        else:
            assert_contract_json(status, headers, body, name)
        statuses[name] = status
    assert statuses["valid"] == 201 and statuses["bad-host"] == 400


def test_what_is_not_http_is_refused_before_the_app_and_the_server_goes_on(make_serve):
    refused = {}
    for name, raw in malformed_requests(make_serve["port"]).items():
        status, headers, body = send(make_serve["url"], raw)
        assert 400 <= status < 500, (name, status, body[:200])
        assert b"<html" not in body.lower() and b"traceback" not in body.lower(), name
        if body:  # it reached the app: the contract's answer
            assert_contract_json(status, headers, body, name)
        refused[name] = status
    assert refused["garbage"] == 400 and refused["too-many-headers"] == 431
    good = f'{{"userId": "42", "signed": "{signing.sign(make_serve["secret"], "42")}"}}'
    raw = (
        f"POST /trusted-identity/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:{make_serve['port']}\r\n"
        f"Connection: close\r\nContent-Type: application/json\r\nX-Api-Key: {make_serve['key']}"
        f"\r\nContent-Length: {len(good)}\r\n\r\n{good}"
    ).encode()
    status, _headers, body = send(make_serve["url"], raw)
    assert status == 201 and b'"trusted": true' in body.replace(b'":true', b'": true'), body
