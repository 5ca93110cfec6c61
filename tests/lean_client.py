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

from trusted_identity.wsgi import LeanSessions


def call_wsgi(app, environ) -> tuple[str, list[tuple[str, str]], bytes]:
    """(status line, headers, body) of one WSGI call."""
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=list(headers))

    # As Django's test client does: the test's transaction must survive the request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return started["status"], started["headers"], body


class LeanHandler:
    """What ``Client.request`` calls: the environ in, an HttpResponse out."""

    def __call__(self, environ):
        # Built per request, as a server process would at start: tests change settings.
        app = LeanSessions(WSGIHandler())
        status, headers, body = call_wsgi(app, environ)
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
