"""A test client for the lean session path: ``LeanSessions(get_wsgi_application())``
called directly, as a WSGI server calls it, with the environ Django's test client builds.

``tests/conftest.py`` runs the tests marked ``both_paths`` with Django's test client and
with this one (the ``client`` fixture, parametrized by ``session_path``). Requests the
wrapper passes on reach Django's real ``WSGIHandler`` (the site's whole middleware
chain, CSRF checks included), not the test client's handler.
"""

from __future__ import annotations

from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.test import Client

from trusted_identity import wsgi as lean_module
from trusted_identity.wsgi import LeanSessions


def _keep_connections(**kwargs):
    pass


def call_wsgi(make_app, environ) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of one WSGI call to the application ``make_app()``."""
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=list(headers))

    # As Django's test client does: the test's transaction must survive the request.
    # The lean path calls close_old_connections itself when only Django's receivers
    # listen to the request signals (as here, once made inside this window).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    lean_module.close_old_connections = _keep_connections
    try:
        app = make_app()
        chunks = app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    finally:
        lean_module.close_old_connections = close_old_connections
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return started["status"], started["headers"], body


class LeanHandler:
    """What ``Client.request`` calls: the environ in, an HttpResponse out."""

    def __call__(self, environ):
        # Built per request, as a server process would at start: tests change settings.
        status, headers, body = call_wsgi(lambda: LeanSessions(WSGIHandler()), environ)
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
