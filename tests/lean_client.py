"""Test clients for the lean session paths: ``LeanSessions(get_wsgi_application())``
called directly, as a WSGI server calls it, with the environ Django's test client builds;
and the ASGI door (``trusted_identity.asgi.LeanSessions``) in front of Django's
``ASGIHandler``, called with the scope an ASGI server would make of that environ.

``tests/conftest.py`` runs the tests marked ``both_paths`` with Django's test client and
with these (the ``client`` fixture, parametrized by ``session_path``). Requests a
wrapper passes on reach Django's real ``WSGIHandler`` or ``ASGIHandler`` (the site's
whole middleware chain, CSRF checks included), not the test client's handler.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.test import Client

from trusted_identity import lean as lean_module
from trusted_identity.lean import close_old
from trusted_identity.wsgi import LeanSessions


def _keep_connections(*args, **kwargs):
    pass


def call_wsgi(
    make_app, environ, *, as_a_server: bool = False
) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of one WSGI call to the application ``make_app()``.

    ``as_a_server``: the connections closed when old, before and after, as a server's
    request runs (a transactional test's own choice); else kept, as Django's test
    client keeps them."""
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=list(headers))

    def call() -> bytes:
        chunks = make_app()(environ, start_response)
        try:
            return b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()

    if as_a_server:
        body = call()
        return started["status"], started["headers"], body
    # As Django's test client does: the test's transaction must survive the request.
    # The lean path calls close_old itself (close_old_connections) when only Django's
    # receivers listen to the request signals (as here, once made inside this window).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    lean_module.close_old = _keep_connections
    try:
        body = call()
    finally:
        lean_module.close_old = close_old
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return started["status"], started["headers"], body


class _Built:
    """An application built as a server process builds it at start, built again after
    any setting changes (tests change settings between requests)."""

    changes = 0  # setting_changed signals seen, by every client

    def __init__(self, make):
        self.make, self.app, self.seen = make, None, -1

    def __call__(self):
        if self.app is None or self.seen != _Built.changes:
            self.app, self.seen = self.make(), _Built.changes
        return self.app


def _setting_changed(**kwargs) -> None:
    _Built.changes += 1


setting_changed.connect(_setting_changed, weak=False, dispatch_uid="tests.lean_client")


class LeanHandler:
    """What ``Client.request`` calls: the environ in, an HttpResponse out."""

    def __init__(self):
        self.app = _Built(lambda: LeanSessions(WSGIHandler()))

    def __call__(self, environ):
        return response_of(*call_wsgi(self.app, environ))


def response_of(status: str, headers: list[tuple[str, str]], body: bytes) -> HttpResponse:
    """The answer of a door as the test client's HttpResponse, its raw status line and
    headers kept (``raw_status``, ``raw_headers``) for the tests that read the wire."""
    response = HttpResponse(body, status=int(status.split(" ", 1)[0]))
    del response["Content-Type"]
    for name, value in headers:
        if name.lower() == "set-cookie":
            response.cookies.load(value)
        else:
            response[name] = value
    response.raw_status, response.raw_headers = status, headers
    response.wsgi_request = HttpRequest()
    return response


class LeanClient(Client):
    """Django's test client with every request sent through ``LeanSessions``."""

    session_path = "lean"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handler = LeanHandler()


# ------------------------------------------------------------------------ ASGI


def scope_of(environ) -> tuple[dict, bytes]:
    """The ASGI scope and body an ASGI server would give for the WSGI ``environ``
    (what Django's test client builds): the same request on the other protocol."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].lower().replace("_", "-")
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.lower().replace("_", "-")
        else:
            continue
        if value != "" or (key.startswith("HTTP_") and key != "HTTP_COOKIE"):
            headers.append((name.encode("latin-1"), _header_bytes(str(value))))
    stream = environ.get("wsgi.input")
    body = stream.read() if stream is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": environ["PATH_INFO"].encode("latin-1").decode("utf-8", "replace"),
        "raw_path": environ["PATH_INFO"].encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), 50000),
        "server": (environ.get("SERVER_NAME", "testserver"), int(environ.get("SERVER_PORT", 80))),
    }
    return scope, body


def _header_bytes(value: str) -> bytes:
    """A header value as sent: latin-1 text as WSGI gives it, else the UTF-8 a client
    would have sent (the test client's environ takes any text)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


class _ClientLoop:
    """One event loop per test process, in a thread of its own, on which ``call_asgi``
    runs every ASGI call: ``async_to_sync`` otherwise makes a thread and a loop per call
    (about half a millisecond, which floods of thousands of starts paid per start). It
    is offered to ``async_to_sync`` as the calling thread's main event loop, as asgiref
    does inside ``sync_to_async``: thread-sensitive work still comes back to the calling
    thread (the test's transaction)."""

    loop: asyncio.AbstractEventLoop | None = None
    pid: int | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        if cls.loop is None or cls.pid != os.getpid():  # a forked child makes its own
            cls.loop, cls.pid = asyncio.new_event_loop(), os.getpid()
            thread = threading.Thread(
                target=cls.loop.run_forever, name="lean-asgi-client", daemon=True
            )
            thread.start()
            atexit.register(cls._close, cls.loop, thread)
        return cls.loop

    @staticmethod
    def _close(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def call_asgi(make_app, scope: dict, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of one ASGI call to ``make_app()``, run by
    ``async_to_sync`` from this thread on the process's client loop (its database work
    stays in this thread: the test's transaction), the request signals left alone as
    ``call_wsgi`` does."""
    from http.client import responses

    from asgiref.sync import SyncToAsync, async_to_sync

    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # never disconnects while the answer is made
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message):
        sent.append(message)

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    lean_module.close_old = _keep_connections
    local = SyncToAsync.threadlocal
    offered = getattr(local, "main_event_loop", None), getattr(local, "main_event_loop_pid", None)
    local.main_event_loop, local.main_event_loop_pid = _ClientLoop.get(), os.getpid()
    try:
        async_to_sync(make_app())(scope, receive, send)
    finally:
        local.main_event_loop, local.main_event_loop_pid = offered
        lean_module.close_old = close_old
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in start["headers"]]
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    status = start["status"]
    return f"{status} {responses.get(status, 'Unknown')}", headers, content


def in_own_loop(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """``asyncio.run(main())`` in a thread of its own (a browser test's Playwright leaves
    its loop marked running in the main thread): its result, or its exception raised."""
    outcome: list[tuple[Any, BaseException | None]] = []

    def run() -> None:
        try:
            outcome.append((asyncio.run(main()), None))
        except BaseException as exc:  # re-raised in the test's thread
            outcome.append((None, exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert outcome, "still running after 30 s"
    [(result, error)] = outcome
    if error is not None:
        raise error
    return result


def lean_asgi(application=None):
    """The ASGI door as a test calls it: its synchronous part in this thread."""
    from django.core.handlers.asgi import ASGIHandler

    from trusted_identity.asgi import LeanSessions as LeanASGI

    return LeanASGI(application or ASGIHandler(), threads=0)


class LeanASGIHandler:
    """What ``Client.request`` calls: the environ in (as an ASGI scope), an HttpResponse out."""

    def __init__(self):
        self.app = _Built(lean_asgi)

    def __call__(self, environ):
        scope, body = scope_of(environ)
        return response_of(*call_asgi(self.app, scope, body))


class LeanASGIClient(Client):
    """Django's test client with every request sent through the ASGI door."""

    session_path = "lean_asgi"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handler = LeanASGIHandler()
