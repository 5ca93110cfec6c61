"""The lean path for session start: a WSGI wrapper in front of Django.

Session start is the one request every client app makes on every launch. In a site's
WSGI file::

    from trusted_identity.wsgi import LeanSessions

    application = LeanSessions(get_wsgi_application())

``POST <mount>/v1/sessions`` and its CORS preflight are then answered here, without
Django's middleware chain, URL resolver and response objects; every other request
goes to the wrapped application untouched. What is answered here and how is
``lean.LeanDoor``'s, shared with the ASGI door (``trusted_identity.asgi``): this
module only adapts WSGI (the environ in, ``start_response`` and the body out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.wsgi import WSGIRequest

from .lean import METHODS, LeanDoor, status_line

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LeanSessions:
    """WSGI middleware: session starts answered directly, everything else by ``application``."""

    def __init__(self, application: WSGIApp) -> None:
        self.application = application
        self.door = LeanDoor("WSGI")
        # WSGI gives PATH_INFO as latin-1 text of the raw bytes.
        self.paths = frozenset(p.encode("utf-8").decode("latin-1") for p in self.door.paths)

    @property
    def active(self) -> bool:
        return self.door.active

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            not self.door.active
            or environ.get("PATH_INFO") not in self.paths
            or environ.get("REQUEST_METHOD") not in METHODS
            or environ.get("HTTP_COOKIE")
        ):
            return self.application(environ, start_response)
        request = WSGIRequest(environ)
        if self.door.site_answers(request):
            return self.application(environ, start_response)
        return self.answer(request, start_response)

    def answer(self, request: WSGIRequest, start_response: StartResponse) -> list[bytes]:
        status, headers, body = self.door.respond(request, environ=request.environ)
        start_response(status_line(status), headers)
        return [body]

    def _plain_signals(self) -> bool:
        return self.door.plain_signals()
