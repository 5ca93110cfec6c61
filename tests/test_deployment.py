"""The production path, as an operator and an attacker see it (SECURITY.md).

Real processes only: ``manage.py trusted_identity`` with the example project's
settings read from environment variables (DEBUG off, a SQLite file), and the app
served by gunicorn with ``project/gunicorn.conf.py``. The test

1. sets a space up through the CLI and keeps every secret the CLI printed;
2. sends hostile requests to gunicorn, including ones so malformed that gunicorn
   answers them itself, before Django: every answer is the contract's JSON;
3. rotates the encryption key by the runbook (new key first, ``rekey``, old key
   removed) and restarts the server: every signature made before still verifies;
4. searches the database file, the server's output (access log included) and
   every CLI error for every secret.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trusted_identity import signing
from trusted_identity.crypto import generate_key

from . import hardening
from .docs_snippets import snippet
from .isolation import free_port
from .test_hostile_http import assert_contract_json, hostile_requests, request, send

REPO = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")

pytestmark = [
    pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed"),
    pytest.mark.any_database,  # the deployment's own SQLite file
    pytest.mark.end_to_end,
]


class Deployment:
    def __init__(self, root: Path):
        self.root = root
        self.db = root / "db.sqlite3"
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTED_IDENTITY")},
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DJANGO_READ_DOT_ENV": "0",
            "DEBUG": "0",
            "SECRET_KEY": "deployment-test-" + "k" * 40,
            "DATABASE_URL": f"sqlite:///{self.db}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",  # no TLS proxy in front of this test server
            "TRUSTED_IDENTITY_RATE_LIMIT": "off",
            "GUNICORN_ACCESS_LOG": "-",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "2",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PYTHONWARNINGS": "ignore",
        }
        self.env.pop("CACHE_URL", None)
        self.secrets: set[str] = set()
        self.errors: list[str] = []
        self.server: subprocess.Popen | None = None
        self.server_output = root / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_keys(self, *keys: str) -> None:
        self.env["TRUSTED_IDENTITY_ENCRYPTION_KEYS"] = ",".join(keys)

    def manage(self, *args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.errors.append(done.stderr)
        if ok:
            assert done.returncode == 0, (args, done.stderr)
        else:
            assert done.returncode != 0, (args, done.stdout)
            # One line of reason (after any log records the project's LOGGING prints).
            assert "Traceback" not in done.stderr
            assert done.stderr.splitlines()[-1].startswith("CommandError: "), done.stderr
        return done.stdout.strip()

    def cli(self, *args: str, ok: bool = True) -> str:
        out = self.manage("trusted_identity", *args, ok=ok)
        if out.startswith("tis_"):
            self.secrets.add(out)
            hardening.remember_secret(out)
        return out

    def start_server(self) -> None:
        with self.server_output.open("ab") as log:  # gunicorn keeps its own copy
            self.server = subprocess.Popen(
                [str(GUNICORN), "-c", "project/gunicorn.conf.py", "project.wsgi"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.server.poll() is None, self.server_output.read_text()
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            self.server.wait(timeout=30)
        self.server = None

    def start_session(self, api_key: str, user_id: str, signed: str) -> tuple[int, dict]:
        body = json.dumps({"userId": user_id, "signed": signed}).encode()
        raw = request(
            "POST",
            "/trusted-identity/v1/sessions",
            {
                "Host": f"127.0.0.1:{self.port}",
                "Connection": "close",
                "Content-Type": "application/json",
                "X-Api-Key": api_key,
                "Content-Length": str(len(body)),
            },
            body,
        )
        status, headers, answer = send(self.url, raw)
        assert_contract_json(status, headers, answer, "session start")
        return status, json.loads(answer)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("deployment"))
    yield d
    d.stop_server()


def malformed_requests(port: int) -> dict[str, bytes]:
    """Requests gunicorn itself refuses (it answers them before Django runs)."""
    host = f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n"
    return {
        "garbage": b"GARBAGE\r\n\r\n",
        "bad-request-line": b"GET /trusted-identity/ HTTP/1.1 extra\r\n" + host.encode() + b"\r\n",
        "raw-non-ascii-path": b"GET /trusted-identity/\xff\xfe HTTP/1.1\r\n"
        + host.encode()
        + b"\r\n",
        "nul-in-header": (
            "POST /trusted-identity/v1/sessions HTTP/1.1\r\n"
            + host
            + "Content-Type: application/json; charset=\x00\r\nContent-Length: 2\r\n\r\n{}"
        ).encode("latin-1"),
        "request-line-too-long": b"GET /trusted-identity/"
        + b"a" * 9000
        + b" HTTP/1.1\r\n"
        + host.encode()
        + b"\r\n",
        "header-name-invalid": b"GET /trusted-identity/ HTTP/1.1\r\n"
        + host.encode()
        + b"Bad Header: x\r\n\r\n",
        "unsupported-transfer-coding": b"POST /trusted-identity/v1/sessions HTTP/1.1\r\n"
        + host.encode()
        + b"Transfer-Encoding: gzip\r\n\r\n",
        "bad-chunk": b"POST /trusted-identity/v1/sessions HTTP/1.1\r\n"
        + host.encode()
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        "http-0.9-ish": b"GET /trusted-identity/\r\n\r\n",
        "too-many-headers": b"GET /trusted-identity/ HTTP/1.1\r\n"
        + host.encode()
        + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        + b"\r\n",
        "bad-host-syntax": b"GET /trusted-identity/v1/sessions HTTP/1.1\r\nHost: [::1\r\n"
        b"Connection: close\r\n\r\n",
    }


def test_deployment_runbook_hostile_requests_key_rotation_and_no_leak(deployment):
    d = deployment
    old_key = generate_key()
    d.set_keys(old_key)
    d.manage("migrate", "--noinput", "-v0")

    # 1. A space through the CLI; every secret it prints is kept.
    d.cli("create-space", "acme", "--name", "Acme")
    keys = {kind: d.cli("add-platform", "acme", kind) for kind in ("ios", "web")}
    first = {kind: d.cli("show-secret", "acme", kind) for kind in keys}
    rotated = d.cli("rotate-secret", "acme", "ios", "--grace", "2h")
    d.cli("enforce", "acme", "ios", "on", "--force", "--reason", "no clients yet")
    valid = {"ios": [first["ios"], rotated], "web": [first["web"]]}
    signatures = [
        (kind, user_id, signing.sign(secret, user_id))
        for kind, secrets in valid.items()
        for secret in secrets
        for user_id in ("42", " 42", "Zoë", "a" * 1024)
    ]
    assert d.cli("sign", "acme", "ios", "42") == signing.sign(rotated, "42")
    d.cli("show-secret", "acme", "roku", ok=False)
    d.cli("rotate-secret", "acme", "ios", "--grace", "5x", ok=False)

    # 2. The server, and what an attacker can send it.
    d.start_server()
    for kind, user_id, signed in signatures:
        status, answer = d.start_session(keys[kind], user_id, signed)
        assert status == 201 and answer["trusted"] is True, answer
    status, answer = d.start_session(keys["ios"], "42", "0" * 64)
    assert status == 403 and answer["error"]["code"] == "signature_invalid"

    wire = {
        **hostile_requests(f"127.0.0.1:{d.port}", keys["ios"], rotated),
        **malformed_requests(d.port),
    }
    statuses = {}
    for name, raw in wire.items():
        status, headers, body = send(d.url, raw)
        assert_contract_json(status, headers, body, name)
        statuses[name] = status
    assert statuses["garbage"] == 400 and statuses["request-line-too-long"] == 414
    assert statuses["bad-host"] == 400 and statuses["valid"] == 201

    # 3. Rotate the encryption key by the runbook (docs/production.md's, run as written
    # with the old key in $OLD), restarting the server on the way.
    d.stop_server()
    runbook = snippet("rekey-runbook") + 'echo "$TRUSTED_IDENTITY_ENCRYPTION_KEYS"\n'
    path = f"{Path(sys.executable).parent}{os.pathsep}{d.env.get('PATH', '/usr/bin:/bin')}"
    ran = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + runbook],
        cwd=REPO,
        env={**d.env, "OLD": old_key, "PATH": path},  # `python` is this environment's
        capture_output=True,
        text=True,
        timeout=120,
    )
    d.errors.append(ran.stderr)
    assert ran.returncode == 0, ran.stderr
    new_key = ran.stdout.splitlines()[-1]
    assert new_key != old_key and "," not in new_key  # the old key retired
    d.set_keys(new_key)
    d.start_server()
    for kind, user_id, signed in signatures:
        status, answer = d.start_session(keys[kind], user_id, signed)
        assert status == 201 and answer["trusted"] is True, (kind, user_id, answer)
    assert d.cli("show-secret", "acme", "ios") == rotated
    assert d.cli("sign", "acme", "web", "42") == signing.sign(first["web"], "42")
    d.set_keys(old_key)  # the old key alone can read nothing any more
    error = d.manage("trusted_identity", "show-secret", "acme", "ios", ok=False)
    assert error == "" and "not in TRUSTED_IDENTITY_ENCRYPTION_KEYS" in d.errors[-1]
    d.set_keys(new_key)
    d.stop_server()

    # 4. No secret in the database file, the server's output or any CLI error.
    assert len(d.secrets) == 3
    files = [p for p in d.root.iterdir() if p.name.startswith("db.sqlite3")]
    image = b"".join(p.read_bytes() for p in files)
    assert b"v1:" in image  # the ciphertexts really are in there
    server_log = d.server_output.read_text("utf-8", "replace")
    assert "POST /trusted-identity/v1/sessions" in server_log  # the access log is there
    for secret in d.secrets:
        tail = secret[-hardening.TAIL :]
        for encoded in (tail.encode(), tail.encode("utf-16-le"), tail.encode("utf-16-be")):
            assert encoded not in image, "a secret is in the database file"
        assert tail not in server_log, "a secret is in the server's output"
        assert not any(tail in error for error in d.errors), "a secret is in a CLI error"
        hardening.count("leak_checks", 5)
    assert re.search(r"Invalid request from ip=127\.0\.0\.1", server_log)
