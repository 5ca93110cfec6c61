"""The lean path for session start: a WSGI wrapper in front of Django.

Session start is the one request every client app makes on every launch. In a site's
WSGI file::

    from trusted_identity.wsgi import LeanSessions

    application = LeanSessions(get_wsgi_application())

``POST <mount>/v1/sessions`` and its CORS preflight are then answered here, without
Django's middleware chain, URL resolver and response objects; every other request
goes to the wrapped application untouched. The answer is decided by
``views.session_answer``, the function the Django view calls too, and dressed with
exactly the headers the site's middleware would add, computed once by running that
middleware (``SecurityMiddleware``, ``XFrameOptionsMiddleware``) on a probe response.

A request goes to Django instead whenever Django's answer could differ from what is
rebuilt here: it carries cookies (a session, CSRF or messages middleware could answer
with a cookie), the site's ``SecurityMiddleware`` or ``CommonMiddleware`` would answer
it before any view (the HTTPS redirect, a Host not in ``ALLOWED_HOSTS``, a refused
User-Agent, ``PREPEND_WWW``), or it is any other method. The wrapper turns itself off
(logged once) when the site runs a middleware it does not know, unless the site lists
it in ``TRUSTED_IDENTITY["LEAN_PATH_SKIPS_MIDDLEWARE"]``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from http.client import responses
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections, reset_queries
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix, resolve, reverse
from django.utils.log import log_response
from django.utils.module_loading import import_string

from .conf import app_settings

logger = logging.getLogger("trusted_identity")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SECURITY = "django.middleware.security.SecurityMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"
XFRAME = "django.middleware.clickjacking.XFrameOptionsMiddleware"
#: Middleware that adds nothing to a cookie-less session start under the mount (its
#: view is CSRF-exempt, reads no session, user or message, and is no static file).
INERT = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
}
#: What ``CommonMiddleware`` adds to every answer: filled in per request.
CONTENT_LENGTH = "Content-Length"


class _Probe(HttpRequest):
    """A request that is only secure or not: what the response middleware asks of it."""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self._secure = secure

    def is_secure(self) -> bool:
        return self._secure


class LeanSessions:
    """WSGI middleware: session starts answered directly, everything else by ``application``."""

    def __init__(self, application: WSGIApp) -> None:
        self.application = application
        self.paths: frozenset[str] = frozenset()
        self.request_middleware: list[Any] = []
        self.site_headers: dict[bool, list[tuple[str, str]]] = {}
        self.scheme_matters = False
        self.receivers_known = False
        self.receiver_counts = (-1, -1)
        self.active = False
        try:
            self._configure()
        except Exception:
            logger.exception("Trusted Identity's lean session path is off: set-up failed")
            self.active = False

    # ------------------------------------------------------------------ set-up

    def _configure(self) -> None:
        from . import views  # needs the app registry: Django is set up by now

        self.session_answer, self.json_bytes = views.session_answer, views.json_bytes
        reason = self._unsupported()
        if reason:
            logger.warning("Trusted Identity's lean session path is off: %s", reason)
            return
        # The path as PATH_INFO carries it: what the URL resolver matches, whatever
        # SCRIPT_NAME the server mounts the site under.
        path = "/" + reverse("trusted_identity:start-session")[len(get_script_prefix()) :]
        if resolve(path).func is not views.start_session:
            logger.warning("Trusted Identity's lean session path is off: %s goes elsewhere", path)
            return
        # WSGI gives PATH_INFO as latin-1 text of the raw bytes.
        wsgi_path = path.encode("utf-8").decode("latin-1")
        self.paths = frozenset({wsgi_path, wsgi_path + "/"})
        for name in settings.MIDDLEWARE:
            if name in (SECURITY, COMMON):
                middleware = import_string(name)(_no_response)
                # SecurityMiddleware's request phase does nothing but the HTTPS redirect.
                if name == COMMON or middleware.redirect:
                    self.request_middleware.append(middleware)
        self.site_headers = {secure: self._probe_headers(secure) for secure in (False, True)}
        # Only HSTS depends on the scheme: don't ask for it when the site sends none.
        self.scheme_matters = self.site_headers[False] != self.site_headers[True]
        started, finished = signals.request_started.receivers, signals.request_finished.receivers
        self.receivers_known = {_receiver(r) for r in started + finished} <= DJANGOS_RECEIVERS
        self.receiver_counts = (len(started), len(finished))
        self.active = True

    def _unsupported(self) -> str | None:
        skipped = set(app_settings.LEAN_PATH_SKIPS_MIDDLEWARE or ())
        unknown = [
            name
            for name in settings.MIDDLEWARE
            if name not in INERT and name not in (SECURITY, COMMON, XFRAME) and name not in skipped
        ]
        if unknown:
            return (
                f"the site runs middleware it does not know ({', '.join(unknown)}); list "
                "those that leave session start alone in "
                'TRUSTED_IDENTITY["LEAN_PATH_SKIPS_MIDDLEWARE"]'
            )
        if settings.CSRF_USE_SESSIONS:
            return "CSRF_USE_SESSIONS reads the session on every request"
        return None

    def _probe_headers(self, secure: bool) -> list[tuple[str, str]]:
        """The headers the site's middleware adds after the view, innermost first.

        Computed by running the middleware itself on an empty probe response.
        """
        added: list[tuple[str, str]] = []
        for name in reversed(settings.MIDDLEWARE):
            if name == COMMON:
                added.append((CONTENT_LENGTH, ""))
            elif name in (SECURITY, XFRAME):
                probe = HttpResponse()
                del probe["Content-Type"]
                import_string(name)(_no_response).process_response(_Probe(secure), probe)
                added.extend(probe.items())
        return added

    # ---------------------------------------------------------------- requests

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            not self.active
            or environ.get("PATH_INFO") not in self.paths
            or environ.get("REQUEST_METHOD") not in ("POST", "OPTIONS")
            or environ.get("HTTP_COOKIE")
        ):
            return self.application(environ, start_response)
        request = WSGIRequest(environ)
        try:
            for middleware in self.request_middleware:
                if middleware.process_request(request) is not None:
                    return self.application(environ, start_response)
        except Exception:  # a Host not allowed, a refused User-Agent: Django answers
            return self.application(environ, start_response)
        return self.answer(request, start_response)

    def answer(self, request: WSGIRequest, start_response: StartResponse) -> list[bytes]:
        plain = self._plain_signals()
        if plain:
            close_old_connections()
            if settings.DEBUG:
                reset_queries()
        else:
            signals.request_started.send(sender=self.__class__, environ=request.environ)
        try:
            answer = self.session_answer(request)
            body = self.json_bytes(answer.payload)
            headers = [("Content-Type", "application/json"), *answer.headers]
            secure = self.scheme_matters and request.is_secure()
            for name, value in self.site_headers[secure]:
                if name == CONTENT_LENGTH:
                    value = str(len(body))
                headers.append((name, value))
            reason = responses[answer.status]
            if answer.status >= 400:  # logged as Django's handler logs it (django.request)
                log_response("%s: %s", reason, request.path, response=_Logged(answer.status),
                             request=request)  # fmt: skip
            start_response(f"{answer.status} {reason}", headers)
            return [body]
        finally:
            if plain:
                close_old_connections()
            else:
                signals.request_finished.send(sender=self.__class__)

    def _plain_signals(self) -> bool:
        """Whether only Django's own receivers listen to the request signals.

        Then the lean path does what they do for it directly: sending the two signals
        costs a quarter of a lean session start. Old or broken database connections
        are closed before and after (``close_old_connections``: ``CONN_MAX_AGE``,
        health checks), the query log is reset under DEBUG; the URLconf is never
        changed here, and closing cache connections at the end of each request is
        left out (a no-op for the local-memory, database and Redis backends).
        Anything else listening, a site's receiver or a test client's changes,
        gets the signals sent as Django sends them.
        """
        return (
            self.receivers_known
            and len(signals.request_started.receivers) == self.receiver_counts[0]
            and len(signals.request_finished.receivers) == self.receiver_counts[1]
        )


#: Django's own receivers of request_started and request_finished.
DJANGOS_RECEIVERS = {close_old_connections, reset_queries, close_caches, reset_urlconf}


def _receiver(entry: tuple) -> Any:
    receiver = entry[1]
    return receiver() if isinstance(receiver, weakref.ReferenceType) else receiver


class _Logged:
    """What ``log_response`` reads of a response."""

    _has_been_logged = False

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def _no_response(request: HttpRequest) -> None:  # pragma: no cover - never called
    raise AssertionError("the lean path runs only the request and response phases")
