"""The ASGI door (``trusted_identity.asgi.LeanSessions``) answers as Django's ASGI handler
and as the WSGI door do.

In process: each request of test_lean_path.py's corpus, as the ASGI scope a server
would make of it, goes to Django's ``ASGIHandler`` (the example project's whole
middleware chain) and to ``LeanSessions(ASGIHandler())``: status, headers and body must
be the same bytes (the session id aside), the counts must move alike, and the
requests the WSGI door answers itself are the ones the ASGI door answers. The tests
marked ``both_paths`` elsewhere run on this door too (tests/lean_client.py). Then one
real server: uvicorn on a free port, with the example project's ``project.asgi``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler

from trusted_identity import lean, signing
from trusted_identity.asgi import LeanSessions

from . import hardening
from .cli_host import cli_for
from .isolation import free_port
from .lean_client import LeanASGIClient, call_asgi, in_own_loop, lean_asgi, scope_of
from .migrated import migrated_sqlite
from .site_process import WORKER_READY, wait_until_workers_started
from .test_lean_path import (
    LEAN,
    RANDOM,
    SESSION_ID,
    SESSIONS,
    corpus,
    counts,
    environ,
    site,  # noqa: F401 - a fixture
    world,  # noqa: F401 - a fixture
)

REPO = Path(__file__).resolve().parent.parent
UVICORN = Path(sys.executable).with_name("uvicorn")
GRANIAN = Path(sys.executable).with_name("granian")
#: HTTP framing a server settles before any application sees the request (a body
#: shorter or longer than its Content-Length, a negative one): the ASGI door reads the
#: body as the WSGI door does; Django's ASGI handler takes whatever bytes it is given.
FRAMING = {"short-content-length", "huge-content-length", "bad-content-length"}


class Spy:
    """The wrapped ASGI application, remembering whether the door passed a request on."""

    def __init__(self, application):
        self.application, self.calls = application, 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        return await self.application(scope, receive, send)


def answer(make_app, request: dict):
    before = counts()
    scope, body = scope_of(environ(**request))
    status, headers, content = call_asgi(make_app, scope, body)
    headers = [(k, RANDOM.sub("-", v)) for k, v in headers if k not in ("Date", "Server")]
    return status, headers, SESSION_ID.sub(b'"sessionId": "-"', content), counts() - before


@pytest.mark.parametrize("name", sorted(set(LEAN) - FRAMING | {"elsewhere", "with-a-cookie",
                                                                "bad-host", "get"}))  # fmt: skip
def test_the_same_answer_as_djangos_asgi_handler(site, world, name):
    request = corpus(world)[name]
    spy = Spy(ASGIHandler())
    django_answer = answer(ASGIHandler, request)
    lean_answer = answer(lambda: lean_asgi(spy), request)
    assert lean_answer[:3] == django_answer[:3]
    assert lean_answer[3] == django_answer[3]  # the same counts
    assert spy.calls == (0 if name in LEAN else 1), "who answered"


@pytest.mark.parametrize("name", sorted(LEAN - {"chunked-no-length"}))
def test_the_same_answer_as_the_wsgi_door(site, world, name):
    """Where the WSGI door answers, the ASGI door answers the same bytes (the body read
    as WSGI reads it, Content-Length and all). Not a chunked body without a length: an
    ASGI server hands it over whole, where Django reads no body under WSGI."""
    from django.core.handlers.wsgi import WSGIHandler

    from trusted_identity.wsgi import LeanSessions as LeanWSGI

    from .lean_client import call_wsgi

    request = corpus(world)[name]
    before = counts()
    status, headers, content = call_wsgi(lambda: LeanWSGI(WSGIHandler()), environ(**request))
    wsgi_counted = counts() - before
    asgi_status, asgi_headers, asgi_content, asgi_counted = answer(lean_asgi, request)
    assert asgi_status == status
    assert asgi_headers == [(k, RANDOM.sub("-", v)) for k, v in headers]
    assert asgi_content == SESSION_ID.sub(b'"sessionId": "-"', content)
    assert asgi_counted == wsgi_counted


def test_the_asgi_client_really_takes_the_lean_path(site, world, monkeypatch):
    seen = []
    original = lean.LeanDoor.respond
    monkeypatch.setattr(
        lean.LeanDoor,
        "respond",
        lambda self, *a, **k: seen.append(self.door) or original(self, *a, **k),
    )
    response = LeanASGIClient().post(
        SESSIONS, {}, "application/json", HTTP_X_API_KEY=world.web.api_key
    )
    assert response.status_code == 201 and seen == ["ASGI"]


def test_other_scopes_go_to_the_application(site):
    spy = Spy(ASGIHandler())
    door = LeanSessions(spy)
    received = []

    async def inner(scope, receive, send):
        received.append(scope["type"])

    door.application = inner
    in_own_loop(lambda: door({"type": "lifespan"}, None, None))
    assert received == ["lifespan"]


def test_the_lifespan_shutdown_writes_the_buffered_counts_first(site, monkeypatch):
    """uvicorn ends its process by re-raising SIGTERM: no atexit handler runs there."""
    from trusted_identity import runtime

    stopped = []
    monkeypatch.setattr(runtime.current(), "stop", lambda: stopped.append(1))
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append((message["type"], len(stopped)))

    in_own_loop(lambda: LeanSessions(ASGIHandler())({"type": "lifespan"}, receive, send))
    assert sent == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 1)]


def test_a_client_that_leaves_before_its_body_gets_no_answer(site, world):
    scope, _ = scope_of(environ(body={}, api_key=world.web.api_key))
    sent = []

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async_to_sync(lean_asgi())(scope, receive, send)
    assert sent == []


def test_a_large_body_is_kept_only_to_the_limit_and_refused(site, world):
    scope, _ = scope_of(environ(body={}, api_key=world.web.api_key))
    scope["headers"] = [h for h in scope["headers"] if h[0] != b"content-length"]
    chunks = [{"type": "http.request", "body": b"x" * 65536, "more_body": True}] * 40
    chunks.append({"type": "http.request", "body": b"", "more_body": False})
    messages = iter(chunks)

    async def receive():
        return next(messages)

    kept = async_to_sync(LeanSessions._read_body)(receive, None)
    assert len(kept) == lean.app_settings.MAX_BODY_BYTES + 1
    assert next(messages, None) is None  # drained to the end


def test_threads_must_not_be_negative():
    with pytest.raises(ValueError, match="threads must be 0 or more"):
        LeanSessions(ASGIHandler(), threads=-1)


def test_the_example_project_installs_the_asgi_door():
    from project.asgi import application

    assert isinstance(application, LeanSessions) and application.active
    assert application.threads > 0  # its own pool under a real server


# ------------------------------------------------------------- a real server


def _post(url: str, body: dict, **headers: str) -> tuple[int, Any, dict]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", **headers})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, json.loads(error.read())


def _server_command(name: str, port: int) -> list[str]:
    bind = ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    if name == "uvicorn":
        return [str(UVICORN), "project.asgi:application", *bind, "--no-access-log"]
    interface = name.removeprefix("granian-")
    return [str(GRANIAN), "--interface", interface, *bind, "--no-ws",
            f"project.{interface}:application"]  # fmt: skip


@pytest.mark.parametrize("name", ["uvicorn", "granian-asgi", "granian-wsgi"])
def test_under_a_real_server_starts_are_answered_counted_and_written_on_sigterm(
    tmp_path, name, request
):
    """The example project under uvicorn and Granian (2 workers; its ASGI application,
    and its WSGI one under Granian): valid and invalid starts, a preflight, an admin page
    through Django; the counts buffered in each worker (COUNT_FLUSH_INTERVAL 60 s) all
    written when the server stops on SIGTERM (ASGI: at the lifespan's shutdown;
    Granian's WSGI workers: by multiprocessing's finalizers). A server that does not
    stop within 20 s is made to dump its workers' stacks (faulthandler) into the failure."""
    from trusted_identity.crypto import generate_key

    if not (UVICORN if name == "uvicorn" else GRANIAN).exists():
        pytest.skip(f"{name} is not installed (the serve extra)")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTED_IDENTITY")},
        "DJANGO_SETTINGS_MODULE": "tests.settings_serving",
        "DJANGO_READ_DOT_ENV": "0",
        "DEBUG": "0",
        "SECRET_KEY": "asgi-test-" + "k" * 40,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "TRUSTED_IDENTITY_ENCRYPTION_KEYS": generate_key(),
        "TRUSTED_IDENTITY_RATE_LIMIT": "off",
        "PYTHONWARNINGS": "ignore",
        "PYTHONFAULTHANDLER": "1",
    }
    env.pop("CACHE_URL", None)
    env.pop("DATABASE_URL_TEST", None)

    manage = cli_for(request, env)  # the CLI's chain in one process (tests/cli_host.py)
    migrated_sqlite(tmp_path / "db.sqlite3")  # as `manage.py migrate` makes it
    manage("trusted_identity", "create-space", "acme")
    api_key = manage("trusted_identity", "add-platform", "acme", "web")
    manage("trusted_identity", "allow-origin", "acme", "web", "https://app.example.com")
    secret = manage("trusted_identity", "show-secret", "acme", "web")
    hardening.remember_secret(secret)
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(_server_command(name, port), cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/trusted-identity/v1/sessions"
    try:
        ready = WORKER_READY[name.split("-")[0]]  # both workers up before the first request
        wait_until_workers_started(tmp_path / "server.log", server, ready, 2, name)
        for n in range(20):
            user = f"u{n}"
            code, headers, body = _post(url, {"userId": user, "signed": signing.sign(secret, user)},
                                        **{"X-Api-Key": api_key,
                                           "Origin": "https://app.example.com"})  # fmt: skip
            assert (code, body["trusted"], body["signature"]) == (201, True, "valid")
            assert headers.get("Access-Control-Allow-Origin") == "https://app.example.com", headers
            assert headers["Cache-Control"] == "no-store"
        code, _, body = _post(url, {"userId": "x", "signed": "0" * 64}, **{"X-Api-Key": api_key})
        assert (code, body["signature"]) == (201, "invalid")
        code, _, body = _post(url, {"userId": 5}, **{"X-Api-Key": api_key})
        assert (code, body["error"]["code"]) == (400, "invalid_request")
        asks = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
        preflight = urllib.request.Request(url, method="OPTIONS", headers=asks)
        with urllib.request.urlopen(preflight, timeout=10) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Methods"] == "POST"
        admin = urllib.request.Request(f"http://127.0.0.1:{port}/admin/")
        opener = urllib.request.build_opener(NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(admin, timeout=10)
        with redirect.value:
            assert redirect.value.code == 302  # Django's handler: to the login page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kids = subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(server.pid)], capture_output=True, text=True
            ).stdout.split()
            for kid in kids:
                os.kill(int(kid), signal.SIGABRT)
            time.sleep(2)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            raise AssertionError((tmp_path / "server.log").read_text()[-6000:]) from None
    status = json.loads(manage("trusted_identity", "status", "acme", "--json"))
    web = status["spaces"][0]["platforms"][0]
    assert (web["valid"], web["invalid"]) == (20, 1)  # every buffered count written at exit


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
