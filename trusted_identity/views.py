"""The HTTP face of Trusted Identity: the sign view and session start (CONTRACT section 4).

Every answer is JSON; every error is ``{"error": {"code", "message"}}``. The
views decode requests and encode answers; the decisions are in ``services``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.request import UnreadablePostError
from django.urls import Resolver404, resolve
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables

from . import authentication, ratelimit
from .conf import app_settings
from .exceptions import (
    InvalidRequest,
    RateLimited,
    TrustedIdentityError,
)
from .services import counting, lookup, origins, sessions, site_signing, spaces, verification

logger = logging.getLogger("trusted_identity")

MAX_PARAMETER_LENGTH = 128
#: The URL namespace of ``trusted_identity.urls`` (its ``app_name``).
APP_NAMESPACE = "trusted_identity"


def no_store(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``Cache-Control: no-store`` on every answer: signatures and sessions are per user.

    Set directly rather than with ``never_cache``, which parses and rebuilds the
    header twice per response on the hot path.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response

    return wrapper


def error_payload(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(code: str, message: str, status: int, **headers: str) -> JsonResponse:
    response = JsonResponse(error_payload(code, message), status=status)
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


Headers = list[tuple[str, str]]


def failure(exc: Exception, where: str) -> tuple[int, dict[str, Any], Headers]:
    """The contract's answer to what a view raised: (status, error body, extra headers).

    Call it inside the ``except`` block (it logs the traceback of unexpected errors).
    """
    if isinstance(exc, RateLimited):
        return (
            exc.status,
            error_payload(exc.code, exc.message),
            [("Retry-After", str(exc.retry_after))],
        )
    if isinstance(exc, TrustedIdentityError):
        return exc.status, error_payload(exc.code, exc.message), []
    if isinstance(exc, SuspiciousOperation):
        # Django refused part of the request (such as TooManyFieldsSent): the
        # client's fault, as Django itself would answer, but in JSON.
        logger.warning("Refused a malformed request to %s: %s", where, exc)
        return 400, error_payload("invalid_request", "the request is malformed"), []
    if isinstance(exc, ImproperlyConfigured):
        # Missing or unusable encryption keys: the operator's problem, named in the log.
        logger.error("Trusted Identity is misconfigured: %s", exc)
        message = "the service is not configured correctly; the operator has been told"
        return 503, error_payload("service_unavailable", message), []
    if isinstance(exc, DatabaseError):
        logger.exception("Database error in %s", where)
        message = "the service is unavailable; try again shortly"
        return 503, error_payload("service_unavailable", message), []
    logger.exception("Unexpected error in %s", where)
    return 500, error_payload("internal_error", "an unexpected error occurred"), []


def api_view(*methods: str) -> Callable:
    """JSON in, JSON out: the allowed methods, and every failure as the contract's error body."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return error_response(
                    "method_not_allowed",
                    f"use {' or '.join(methods)}",
                    405,
                    Allow=", ".join(methods),
                )
            try:
                return view(request, *args, **kwargs)
            except Exception as exc:
                status, payload, headers = failure(exc, view.__name__)
                response = JsonResponse(payload, status=status)
                response["Cache-Control"] = "no-store"
                for name, value in headers:
                    response[name] = value
                return response

        return wrapper

    return decorator


#: The client's address behind ``PROXY_COUNT`` trusted proxies (see ``ratelimit``).
client_address = ratelimit.client_address


def _check_rate(scope: str, identity: Callable[[], str], rate: str | None) -> None:
    if ratelimit.parse_rate(rate) is None:
        return
    retry_after = ratelimit.hit(scope, identity(), rate)
    if retry_after is not None:
        raise RateLimited("too many requests; retry later", retry_after)


def _limit_key(request: HttpRequest) -> str:
    """Whom session start's rate limits count the request against (``ratelimit.limit_key``)."""
    return ratelimit.limit_key(client_address(request))


def read_json_body(request: HttpRequest) -> Any:
    """The decoded JSON body, or InvalidRequest naming what is wrong with it."""
    limit = app_settings.MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidRequest("the Content-Length header is not a number") from None
    if declared > limit:
        raise InvalidRequest(f"the body is larger than {limit} bytes")
    try:
        body = request.body
    except (RequestDataTooBig, UnreadablePostError, OSError):
        raise InvalidRequest(f"the body is unreadable or larger than {limit} bytes") from None
    if len(body) > limit:
        raise InvalidRequest(f"the body is larger than {limit} bytes")
    if not body.strip():
        raise InvalidRequest("the body must be a JSON object; send {} for a visitor")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    try:
        return _json_decoder.decode(text)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: What ``json.loads(text, parse_constant=...)`` makes per call, made once (it keeps no
#: state between calls, so threads share it).
_json_decoder = json.JSONDecoder(parse_constant=_reject_constant)


# ------------------------------------------------------------------ CORS
#
# CONTRACT section 7. A preflight carries no API key, so it is answered for an
# origin on any web platform's allow-list; the POST names its platform and gets
# Access-Control-Allow-Origin only for an origin on that platform's list (see
# services.origins for why). Never Access-Control-Allow-Credentials: the session
# endpoint uses no cookies.

CORS_ALLOW_HEADERS = "Content-Type, X-Api-Key, X-App-Version, X-Sdk-Version"
#: Answers a cross-origin page needs to read beyond the CORS-safelisted ones.
CORS_EXPOSE_HEADERS = "Retry-After"


def _cors_allowed(origin: str | None, snapshot: lookup.PlatformSnapshot | None) -> bool:
    try:
        return origins.cors_allowed(origin, snapshot)
    except Exception:  # the database is down: no CORS header, never a 500
        logger.exception("Could not read the allowed origins")
        return False


def _preflight_headers(request: HttpRequest, origin: str) -> Headers:
    headers = [("Allow", "OPTIONS, POST"), ("Vary", "Origin")]
    requested = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
    if requested == "POST" and _cors_allowed(origin, None):
        headers += [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", "POST"),
            ("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS),
            ("Access-Control-Max-Age", str(app_settings.CORS_MAX_AGE)),
        ]
    return headers


# ------------------------------------------------------------------ session start
#
# One function decides the whole answer of ``<mount>/v1/sessions``: the Django view
# below and the lean doors (``trusted_identity.wsgi`` and ``.asgi``: ``LeanSessions``) call
# it and only encode what it returns, so the two can't drift apart.


class Answer(NamedTuple):
    """An answer before encoding: the status, the JSON body (None: no body; a started
    session, encoded as its ``as_dict()``), the headers after ``Content-Type:
    application/json``, in order. A named tuple: made once per request."""

    status: int
    payload: dict[str, Any] | sessions.SessionStart | None
    headers: Headers


_json_encoder = DjangoJSONEncoder()  # what json.dumps(cls=...) makes per call; thread-safe
_JSON_BOOLEANS = ("false", "true")
#: ``as_dict()`` of a started session as ``DjangoJSONEncoder`` writes it: every value a
#: string (escaped as that encoder escapes it, ``ensure_ascii``), a boolean or null.
_SESSION_JSON = (
    '{"sessionId": %s, "anonymous": %s, "userId": %s, "trusted": %s, "signature": %s, '
    '"space": %s, "platform": %s}'
)


def json_bytes(payload: dict[str, Any] | sessions.SessionStart | None) -> bytes:
    """The body of an answer, encoded as JsonResponse encodes it.

    A started session (every session start's answer) is written straight from its
    fields, a quarter of the encoder's time; ``tests/test_http.py`` holds the two to the
    same bytes for any user id."""
    if payload is None:
        return b""
    if type(payload) is sessions.SessionStart:
        user_id = payload.user_id
        text = _SESSION_JSON % (
            encode_basestring_ascii(payload.session_id),
            _JSON_BOOLEANS[user_id is None],
            "null" if user_id is None else encode_basestring_ascii(user_id),
            _JSON_BOOLEANS[payload.signature == "valid"],
            encode_basestring_ascii(payload.signature),
            encode_basestring_ascii(payload.space),
            encode_basestring_ascii(payload.platform),
        )
        return text.encode(settings.DEFAULT_CHARSET)
    return _json_encoder.encode(payload).encode(settings.DEFAULT_CHARSET)


NO_STORE = ("Cache-Control", "no-store")


@sensitive_variables("payload")
def session_answer(request: HttpRequest) -> Answer:
    """``<mount>/v1/sessions``: the preflight, a session start, or the error, as an Answer.

    Never raises: every failure is the contract's error body.
    """
    meta = request.META
    method = request.method
    origin = meta.get("HTTP_ORIGIN")
    if method == "OPTIONS" and origin and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in meta:
        return Answer(204, None, [*_preflight_headers(request, origin), NO_STORE])
    platform = None
    if method != "POST":
        status, body, headers = (
            405,
            error_payload("method_not_allowed", "use POST"),
            [("Allow", "POST")],
        )
    else:
        try:
            # A key no cache knows counts per client before the database is read; a
            # platform's starts count per client and platform: junk makes no counter
            # of its own, so it can't push a real key's out of the cache.
            platform = lookup.lookup_platform(
                meta.get("HTTP_X_API_KEY", ""),
                lambda: _check_rate(
                    "unknown_key",
                    lambda: _limit_key(request),
                    app_settings.UNKNOWN_KEY_RATE_LIMIT,
                ),
            )
            _check_rate(
                "session",
                lambda: f"{_limit_key(request)}:{platform.platform_id}",
                app_settings.RATE_LIMIT,
            )
            payload = read_json_body(request)
            started = sessions.start_session(
                platform, payload, counting.ClientVersions.from_meta(meta)
            )
            status, body, headers = 201, started, []
        except Exception as exc:
            status, body, headers = failure(exc, "start_session")
    headers = [NO_STORE, *headers, ("Vary", "Origin")]
    if origin and method == "POST" and _cors_allowed(origin, platform):
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS))
    return Answer(status, body, headers)


# Outside ATOMIC_REQUESTS: the view writes nothing but counts, which stay buffered
# only outside a transaction (outcomes.py).
@transaction.non_atomic_requests
@csrf_exempt
def start_session(request: HttpRequest) -> HttpResponse:
    """``POST <mount>/v1/sessions``: what a client SDK calls to start a session."""
    answer = session_answer(request)
    response = HttpResponse(
        json_bytes(answer.payload), status=answer.status, content_type="application/json"
    )
    for name, value in answer.headers:
        response[name] = value
    return response


def _parameter(request: HttpRequest, name: str, header: str | None = None) -> str | None:
    values = request.GET.getlist(name)
    if len(values) > 1:
        raise InvalidRequest(f"give {name} once")
    value = values[0] if values else None
    if value is None and header:
        value = request.headers.get(header)
    if value is not None and (not value or len(value) > MAX_PARAMETER_LENGTH):
        raise InvalidRequest(f"{name} is empty or too long")
    return value


# CSRF-exempt only so that a POST gets the JSON 405 instead of Django's HTML CSRF
# page: the view acts on GET and HEAD alone, which CSRF never protects.
@csrf_exempt
@no_store
@api_view("GET", "HEAD")
@sensitive_variables("signed", "answer")
def sign_current_user(request: HttpRequest) -> HttpResponse:
    """``GET <mount>/sign/?platform=<kind>[&form=token]``: the logged-in user's id, signed
    (as a token with its ``expiresAt`` for ``form=token``, and on a public-key platform:
    with the site's private key where it takes public keys, ``services.site_signing``).

    Who is logged in is decided by ``TRUSTED_IDENTITY["SIGN_AUTHENTICATION"]``
    (``authentication.py``): Django's session by default.
    """
    user = authentication.authenticate(request)
    kind = _parameter(request, "platform", "X-Trusted-Identity-Platform")
    if kind is None:
        raise InvalidRequest("platform is required (?platform=web, or X-Trusted-Identity-Platform)")
    space = _parameter(request, "space") or app_settings.SIGNING_SPACE
    if not space:
        raise InvalidRequest(
            "no space given: pass ?space=<slug> or set TRUSTED_IDENTITY['SIGNING_SPACE']"
        )
    _check_rate("sign", lambda: str(user.pk), app_settings.SIGN_RATE_LIMIT)
    form = _parameter(request, "form")
    user_id = str(getattr(user, app_settings.USER_ID_ATTRIBUTE))
    # Only the spaces this site serves (SIGNING_SPACES); not audited per call (hot path).
    platform = spaces.get_signing_platform(space, kind)
    signed = site_signing.sign_in_form(lookup.lookup_platform(platform.api_key), user_id, form)
    answer = {"userId": user_id, "platform": kind, "signed": signed.signed}
    if signed.expires_at is not None:
        answer["expiresAt"] = verification.iso_utc(signed.expires_at)
    return JsonResponse(answer)


@csrf_exempt
@api_view("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Anything else under the mount: a JSON 404, never Django's HTML page."""
    return error_response("not_found", "no such endpoint", 404)


# ------------------------------------------------------------------ error handlers
#
# Django answers some requests before any view runs: a Host header that is not
# allowed (DisallowedHost), an uncaught error in a middleware. With DEBUG off it
# calls the project's handler400/403/404/500, whose defaults are HTML pages. Set
# these in the project's root URLconf (``handler400 = "trusted_identity.views.handler400"``
# and so on): under the app's mount they answer the contract's JSON error body;
# everywhere else they defer to Django's defaults.


def is_app_path(request: HttpRequest) -> bool:
    """Whether the request's path is under this app's mount, in whatever URLconf includes it."""
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    except Exception:  # a broken URLconf must not break the error page as well
        logger.exception("Could not resolve %r for an error page", request.path_info)
        return False
    return APP_NAMESPACE in match.app_names


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_app_path(request):
        return error_response(
            "invalid_request", "the request is malformed (such as a Host header not allowed)", 400
        )
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_app_path(request):
        return error_response("permission_denied", "the request was refused", 403)
    return defaults.permission_denied(request, exception)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_app_path(request):
        return error_response("not_found", "no such endpoint", 404)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if is_app_path(request):
        return error_response("internal_error", "an unexpected error occurred", 500)
    return defaults.server_error(request)
