"""What the two lean doors for session start share: the WSGI one (``wsgi.LeanSessions``)
and the ASGI one (``asgi.LeanSessions``).

A lean door answers ``POST <mount>/v1/sessions`` and its CORS preflight without Django's
middleware chain, URL resolver and response objects. :class:`LeanDoor` holds what does
not depend on the protocol: which requests are the door's (the path, the method, no
cookie), the site's request checks that send a request to Django instead, and the
answer itself, decided by ``views.session_answer`` (the function the Django view calls
too) and dressed with exactly the headers the site's middleware would add, computed
once by running that middleware (``SecurityMiddleware``, ``XFrameOptionsMiddleware``)
on a probe response. The doors only adapt the protocol: build the request, hand on
what is not theirs, send the answer.

A request goes to Django instead whenever Django's answer could differ from what is
rebuilt here: it carries cookies (a session, CSRF or messages middleware could answer
with a cookie), the site's ``SecurityMiddleware`` or ``CommonMiddleware`` would answer
it before any view (the HTTPS redirect, a Host not in ``ALLOWED_HOSTS``, a refused
User-Agent, ``PREPEND_WWW``), or it is any other method. A door turns itself off
(logged once) when the site runs a middleware it does not know, unless the site lists
it in ``TRUSTED_IDENTITY["LEAN_PATH_SKIPS_MIDDLEWARE"]``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable
from http.client import responses
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, reset_queries
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix, resolve, reverse
from django.utils.log import log_response
from django.utils.module_loading import import_string

from . import runtime
from .conf import app_settings

logger = logging.getLogger("trusted_identity")

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
METHODS = ("POST", "OPTIONS")
#: How many verdicts of the site's request checks a door remembers, one per distinct
#: set of what those checks read (path, scheme, Host and the forwarded headers, the
#: User-Agent where the site refuses some): a flood of made-up Hosts only empties it.
VERDICTS_MAX = 256

Headers = list[tuple[str, str]]


class StandIn(HttpRequest):
    """A door's own request object, standing in for Django's where only the decision
    reads it (``META``, ``method``, ``body``, ``path``, ``is_secure()``); ``django()``
    gives Django's own request for anything else (the site's request checks, a logged
    error's report)."""

    def django(self) -> HttpRequest:
        raise NotImplementedError

    @property
    def path_key(self) -> tuple:
        """What ``path`` is made of, cheaper to read than ``path`` itself (with the
        settings): the key the site's request checks' verdicts are remembered by."""
        raise NotImplementedError


def djangos(request: HttpRequest) -> HttpRequest:
    """Django's own request for ``request``: a stand-in's, or ``request`` itself."""
    return request.django() if isinstance(request, StandIn) else request


class _Probe(HttpRequest):
    """A request that is only secure or not: what the response middleware asks of it."""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self._secure = secure

    def is_secure(self) -> bool:
        return self._secure


class LeanDoor:
    """The protocol-free part of a lean door: set up once per process from the settings."""

    def __init__(self, door: str) -> None:
        self.door = door  # "WSGI" or "ASGI", for the log
        #: The session path as the URL resolver matches it (PATH_INFO), with and
        #: without the trailing slash, whatever SCRIPT_NAME the server mounts under.
        self.paths: frozenset[str] = frozenset()
        self.request_middleware: list[Any] = []
        self.site_headers: dict[bool, Headers] = {}
        self.scheme_matters = False
        self.receivers_known = False
        self.receiver_counts = (-1, -1)
        self.active = False
        #: The request checks' verdicts (``site_answers``), forgotten when a setting
        #: changes.
        self._verdicts: dict[tuple, bool] = {}
        self._agents_matter = True
        signals.setting_changed.connect(self._forget)  # weakly: the door's own lifetime
        try:
            self._configure()
        except Exception:
            logger.exception("Trusted Identity's lean %s session path is off: set-up failed", door)
            self.active = False

    # ------------------------------------------------------------------ set-up

    def _configure(self) -> None:
        from . import views  # needs the app registry: Django is set up by now

        self.session_answer, self.json_bytes = views.session_answer, views.json_bytes
        reason = self._unsupported()
        if reason:
            logger.warning("Trusted Identity's lean %s session path is off: %s", self.door, reason)
            return
        path = "/" + reverse("trusted_identity:start-session")[len(get_script_prefix()) :]
        if resolve(path).func is not views.start_session:
            logger.warning(
                "Trusted Identity's lean %s session path is off: %s goes elsewhere", self.door, path
            )
            return
        self.paths = frozenset({path, path + "/"})
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
        self._agents_matter = bool(settings.DISALLOWED_USER_AGENTS)
        self.active = True

    def _forget(self, **kwargs: Any) -> None:
        """A setting changed (``override_settings``): what was worked out from the
        settings is worked out again."""
        self._verdicts = {}
        self._agents_matter = bool(settings.DISALLOWED_USER_AGENTS)

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

    def _probe_headers(self, secure: bool) -> Headers:
        """The headers the site's middleware adds after the view, innermost first.

        Computed by running the middleware itself on an empty probe response.
        """
        added: Headers = []
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

    def site_answers(self, request: HttpRequest) -> bool:
        """Whether the site's request checks would answer before any view (a redirect, a
        Host not allowed, a refused User-Agent): then Django answers instead.

        The checks (``CommonMiddleware``'s, ``SecurityMiddleware``'s redirect) read the
        settings and only what the key below holds of the request, so their verdict is
        remembered per key: running them cost a served session start about a tenth of
        its CPU (docs/performance.md).
        """
        meta = request.META
        try:
            secure = request.is_secure()
        except Exception:  # SECURE_PROXY_SSL_HEADER unusable: Django answers, and says so
            return True
        key = (
            request.path_key if isinstance(request, StandIn) else request.path,
            secure,
            meta.get("HTTP_HOST"),
            meta.get("HTTP_X_FORWARDED_HOST"),
            meta.get("HTTP_X_FORWARDED_PORT"),
            meta.get("SERVER_NAME"),
            meta.get("SERVER_PORT"),
            meta.get("HTTP_USER_AGENT") if self._agents_matter else None,
        )
        verdicts = self._verdicts
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = self._run_request_checks(djangos(request))
            if len(verdicts) >= VERDICTS_MAX:
                verdicts.clear()
            verdicts[key] = verdict
        return verdict

    def _run_request_checks(self, request: HttpRequest) -> bool:
        try:
            return any(m.process_request(request) is not None for m in self.request_middleware)
        except Exception:  # a Host not allowed, a refused User-Agent: Django answers
            return True

    def respond(self, request: HttpRequest, **started: Any) -> tuple[int, Headers, bytes]:
        """The whole answer to a session start or preflight: (status, headers, body).

        Synchronous (the database, the cache, the HMAC): the ASGI door runs it in a
        thread. ``started`` is what Django's handler passes with ``request_started``
        (``environ`` or ``scope``) when the signals are sent.
        """
        plain = self.plain_signals()
        if plain:
            held = self._connections()
            close_old(held)
            if settings.DEBUG:
                reset_queries()
        else:
            signals.request_started.send(sender=self.__class__, **started)
        try:
            answer = self.session_answer(request)
            body = self.json_bytes(answer.payload)
            headers = [("Content-Type", "application/json"), *answer.headers]
            secure = self.scheme_matters and request.is_secure()
            for name, value in self.site_headers[secure]:
                if name == CONTENT_LENGTH:
                    value = str(len(body))
                headers.append((name, value))
            if answer.status >= 400:  # logged as Django's handler logs it (django.request)
                log_response("%s: %s", responses[answer.status], request.path,
                             response=_Logged(answer.status), request=djangos(request))  # fmt: skip
            return answer.status, headers, body
        finally:
            if plain:
                close_old(held)
            else:
                signals.request_finished.send(sender=self.__class__)

    def _connections(self) -> list[BaseDatabaseWrapper]:
        """This thread's database connections (``state.ThreadConnections``): Django's
        ``close_old_connections`` looks each up through asgiref's ``Local``, which
        costs most of its time."""
        return runtime.current().thread_connections.all()

    def plain_signals(self) -> bool:
        """Whether only Django's own receivers listen to the request signals.

        Then the lean path does what they do for it directly: sending the two signals
        costs a quarter of a lean session start. Old or broken database connections
        are closed before and after (``close_old``, as ``close_old_connections``:
        ``CONN_MAX_AGE``, health checks), the query log is reset under DEBUG; the
        URLconf is never changed here, and closing cache connections at the end of each request is
        left out (a no-op for the local-memory, database and Redis backends).
        Anything else listening, a site's receiver or a test client's changes,
        gets the signals sent as Django sends them.
        """
        return (
            self.receivers_known
            and len(signals.request_started.receivers) == self.receiver_counts[0]
            and len(signals.request_finished.receivers) == self.receiver_counts[1]
        )


def close_old(held: Iterable[BaseDatabaseWrapper]) -> None:
    """What Django's ``close_old_connections`` does, for connections already found:
    each one past ``CONN_MAX_AGE``, broken or left outside autocommit is closed, and
    its health check is due again at its next use."""
    for connection in held:
        connection.close_if_unusable_or_obsolete()


def status_line(status: int) -> str:
    """``201 Created``: the status as WSGI's ``start_response`` takes it."""
    return f"{status} {responses[status]}"


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
