"""The lean path for session start: a WSGI wrapper in front of Django.

Session start is the one request every client app makes on every launch. In a site's
WSGI file::

    from trusted_identity.wsgi import LeanSessions

    application = LeanSessions(get_wsgi_application())

``POST <mount>/v1/sessions`` and its CORS preflight are then answered here, without
Django's middleware chain, URL resolver and response objects, and with a request
object of the door's own (``DoorRequest``); every other request goes to the wrapped
application untouched. What is answered here and how is
``lean.LeanDoor``'s, shared with the ASGI door (``trusted_identity.asgi``): this
module only adapts WSGI (the environ in, ``start_response`` and the body out).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.wsgi import WSGIRequest, get_path_info, get_script_name
from django.http import HttpRequest, UnreadablePostError
from django.utils.functional import cached_property

from .lean import METHODS, LeanDoor, StandIn, status_line

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
        request = DoorRequest(environ)
        if self.door.site_answers(request):
            return self.application(environ, start_response)
        return self.answer(request, start_response)

    def answer(self, request: HttpRequest, start_response: StartResponse) -> list[bytes]:
        status, headers, body = self.door.respond(request, environ=request.environ)
        start_response(status_line(status), headers)
        return [body]

    def _plain_signals(self) -> bool:
        return self.door.plain_signals()


class DoorRequest(StandIn):
    """The WSGI door's request: what the decision reads of a session start, read as
    ``WSGIRequest`` reads it, without the rest of its set-up.

    ``WSGIRequest`` and its body cost a served start about a tenth of its CPU
    (docs/performance.md): the content type's parameters and a ``LimitedStream`` made
    for every request, the body read through that stream and checked in three places
    against ``DATA_UPLOAD_MAX_MEMORY_SIZE``. Here the body is read at once, at most the
    length it declares, as through that stream, and refused as Django refuses it. Like
    ``WSGIRequest``, ``HttpRequest.__init__`` is not called: the query, cookies, files
    and form data are not the decision's (``django()`` has them).
    """

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = self.META = environ
        self.method = environ["REQUEST_METHOD"]  # one of METHODS: upper case already

    @cached_property
    def path(self) -> str:
        path_info = get_path_info(self.environ) or "/"
        return f"{get_script_name(self.environ).rstrip('/')}/{path_info.replace('/', '', 1)}"

    @property
    def path_key(self) -> tuple:
        """What ``get_script_name`` and ``get_path_info`` read of the environ."""
        environ = self.environ
        return (
            environ.get("SCRIPT_NAME"),
            environ.get("SCRIPT_URL"),
            environ.get("REDIRECT_URL"),
            environ.get("PATH_INFO"),
        )

    def _get_scheme(self) -> str:
        return self.environ.get("wsgi.url_scheme")

    def is_secure(self) -> bool:
        """As Django's, asked once: the request checks' key and the answer's headers."""
        try:
            return self._secure
        except AttributeError:
            self._secure: bool = super().is_secure()
            return self._secure

    @cached_property
    def body(self) -> bytes:
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:  # as Django 6.1 and WSGIRequest's stream: nothing to read
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            return self.environ["wsgi.input"].read(length) if length > 0 else b""
        except OSError as error:
            raise UnreadablePostError(*error.args) from error

    def django(self) -> WSGIRequest:
        """Django's ``WSGIRequest`` of the same environ, its body the one read here."""
        if "body" in self.__dict__:
            self.environ["wsgi.input"] = io.BytesIO(self.body)
        return WSGIRequest(self.environ)
