"""Two real server processes sharing Redis and one database, driven like production.

A rotation or revocation made from a third process (the CLI) takes effect at
once in both servers, and every start counted in either server reaches the
database once they stop (buffered counts are written at exit).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from trusted_identity.crypto import generate_key
from trusted_identity.signing import sign

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")


def _redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


pytestmark = pytest.mark.skipif(
    not _redis_up() and not os.environ.get("CI"), reason="Redis is not running on 127.0.0.1:6379"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def deployment(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_READ_DOT_ENV": "0",
        "DEBUG": "0",
        "SECRET_KEY": "multiprocess-test-" + "k" * 40,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        "CACHE_URL": "redis://127.0.0.1:6379/13",
        "TRUSTED_IDENTITY_ENCRYPTION_KEYS": generate_key(),
        "TRUSTED_IDENTITY_RATE_LIMIT": "off",
        "WEB_CONCURRENCY": "1",
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    manage("migrate", "--noinput", "-v0")
    subprocess.run([sys.executable, "-c", "import redis; redis.Redis(db=13).flushdb()"], check=True)
    manage("trusted_identity", "create-space", "multi")
    api_key = manage("trusted_identity", "add-platform", "multi", "web")

    servers, urls = [], []
    for _ in range(2):
        port = _free_port()
        servers.append(
            subprocess.Popen(
                [str(GUNICORN), "-c", "project/gunicorn.conf.py", "project.wsgi"],
                cwd=ROOT,
                env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        urls.append(f"http://127.0.0.1:{port}/trusted-identity/v1/sessions")
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                _post(url, api_key, {})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    try:
        yield {"manage": manage, "urls": urls, "api_key": api_key, "servers": servers}
    finally:
        for server in servers:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)


def _post(url: str, api_key: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Api-Key": api_key},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_rotation_and_revocation_reach_both_servers_at_once(deployment):
    manage, urls, api_key = deployment["manage"], deployment["urls"], deployment["api_key"]
    manage("trusted_identity", "enforce", "multi", "web", "on", "--force")
    old = manage("trusted_identity", "show-secret", "multi", "web")
    for url in urls:  # both servers now hold the platform in the shared cache
        assert _post(url, api_key, {"userId": "u1", "signed": sign(old, "u1")})[0] == 201

    new = manage("trusted_identity", "rotate-secret", "multi", "web", "--grace", "0")
    for url in urls:
        status, body = _post(url, api_key, {"userId": "u1", "signed": sign(old, "u1")})
        assert (status, body["error"]["code"]) == (403, "signature_invalid")
        assert _post(url, api_key, {"userId": "u1", "signed": sign(new, "u1")})[0] == 201

    manage("trusted_identity", "enforce", "multi", "web", "off")
    for url in urls:
        status, body = _post(url, api_key, {"userId": "u1", "signed": sign(old, "u1")})
        assert (status, body["signature"]) == (201, "invalid")


def test_counts_from_both_servers_all_reach_the_database(deployment):
    manage, urls, api_key = deployment["manage"], deployment["urls"], deployment["api_key"]
    secret = manage("trusted_identity", "show-secret", "multi", "web")
    sent = {"valid": 0, "missing": 0, "visitor": 2}  # the fixture's two readiness probes
    for n in range(30):
        url = urls[n % 2]
        if n % 3 == 0:
            _post(url, api_key, {"userId": f"u{n}"})
            sent["missing"] += 1
        else:
            _post(url, api_key, {"userId": f"u{n}", "signed": sign(secret, f"u{n}")})
            sent["valid"] += 1
    for server in deployment["servers"]:  # a graceful stop writes what is buffered
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    status = json.loads(manage("trusted_identity", "status", "multi", "--json"))
    web = status["spaces"][0]["platforms"][0]
    assert {k: web[k] for k in sent} == sent
