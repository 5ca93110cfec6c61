"""The lean session path (``trusted_identity.wsgi.LeanSessions``) answers as the Django view does.

Each request of a corpus is sent, with a fresh real WSGI environ, to Django's
``WSGIHandler`` (the example project's whole middleware chain) and to
``LeanSessions(WSGIHandler())``: status line, headers (in order, without Date and
Server, which the server adds) and body must be the same bytes, the session id
aside (random), and the outcome counts must move the same way. The tests marked
``both_paths`` in test_http.py, test_cors.py and test_fuzz.py run their assertions on
both paths too. Runs on SQLite and, with ``DATABASE_URL=postgres://...``, PostgreSQL.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.handlers.wsgi import WSGIHandler
from django.db.models import Sum
from django.test import RequestFactory

from trusted_identity import ratelimit, signing
from trusted_identity.models import OutcomeCount
from trusted_identity.services import access, key_sources, origins, platform_secrets, public_keys
from trusted_identity.wsgi import LeanSessions

from .factories import PlatformFactory
from .keytoken_helpers import key_token, public_pem_of
from .lean_client import LeanClient, call_wsgi

SESSIONS = "/trusted-identity/v1/sessions"
ALLOWED = "https://app.example.com"
SESSION_ID = re.compile(rb'"sessionId": "[A-Za-z0-9_-]+"')
#: Random or clock-bound header parts: a new CSRF cookie, a cookie's expiry date.
RANDOM = re.compile(r"(?<=csrftoken=)\w+|(?<=expires=)[^;]+|^\w{3}, \d\d \w{3} \d{4} [\d:]+ GMT$")


@pytest.fixture
def site(settings):
    """The example project's production headers, on a Host allow-list."""
    settings.ALLOWED_HOSTS = ["testserver", "id.example.com"]
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_SSL_REDIRECT = False
    settings.DEBUG = False
    return settings


@pytest.fixture
def world(space):
    cli = access.get_cli_actor()
    web = PlatformFactory(space=space, kind="web")
    origins.allow_origin(web, ALLOWED, cli)
    enforced = PlatformFactory(space=space, kind="android", enforced=True)
    # The web platform takes public-key tokens too (CONTRACT section 10).
    private = ec.generate_private_key(ec.SECP256R1())
    public_keys.add_public_key(web, public_pem_of(private), cli, kid="ec")
    key_sources.set_key_source(web, "both", cli)
    now = int(time.time())
    claims = {"sub": "u-1", "iat": now - 5, "exp": now + 600}
    return SimpleNamespace(
        web=web,
        web_secret=platform_secrets.reveal_secret(web, cli),
        enforced=enforced,
        enforced_secret=platform_secrets.reveal_secret(enforced, cli),
        public_key_token=key_token(private, alg="ES256", kid="ec", claims=claims),
        public_key_forged=key_token(private, alg="ES256", kid="ec", claims=claims, how="der"),
    )


class Spy:
    """The wrapped application, remembering whether the wrapper passed a request on."""

    def __init__(self, application):
        self.application, self.calls = application, 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.application(environ, start_response)


def environ(method="POST", path=SESSIONS, body=b"{}", api_key=None, **extra):
    if api_key is not None:
        extra["HTTP_X_API_KEY"] = api_key
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = RequestFactory().generic(method, path, data, "application/json", **extra)
    return request.environ


def counts() -> Counter:
    rows = OutcomeCount.objects.values_list("outcome").annotate(n=Sum("count"))
    return Counter(dict(rows))


def answer(make_app, make_environ):
    before = counts()
    status, headers, body = call_wsgi(make_app, make_environ())
    headers = [(k, RANDOM.sub("-", v)) for k, v in headers if k not in ("Date", "Server")]
    return status, headers, SESSION_ID.sub(b'"sessionId": "-"', body), counts() - before


def corpus(w) -> dict[str, dict]:
    web, enforced = w.web.api_key, w.enforced.api_key
    valid = {"userId": "u-1", "signed": signing.sign(w.web_secret, "u-1")}
    return {
        "valid": dict(body=valid, api_key=web),
        "valid-from-allowed-origin": dict(body=valid, api_key=web, HTTP_ORIGIN=ALLOWED),
        "valid-from-other-origin": dict(body=valid, api_key=web, HTTP_ORIGIN="https://evil.test"),
        "valid-https": dict(body=valid, api_key=web, secure=True),
        "valid-upper-hex": dict(
            body={**valid, "signed": valid["signed"].upper()}, api_key=web, HTTP_ORIGIN=ALLOWED
        ),
        "invalid": dict(body={"userId": "u-1", "signed": "0" * 64}, api_key=web),
        "public-key-valid": dict(
            body={"userId": "u-1", "signed": getattr(w, "public_key_token", "")}, api_key=web
        ),
        "public-key-forged": dict(
            body={"userId": "u-1", "signed": getattr(w, "public_key_forged", "")}, api_key=web
        ),
        "missing": dict(body={"userId": "u-1"}, api_key=web),
        "visitor": dict(body={}, api_key=web),
        "visitor-fields": dict(body={"fields": {"plan": "pro", "n": [1, 2]}}, api_key=web),
        "unicode-user": dict(body={"userId": "Zoë ☃"}, api_key=web),
        "enforced-valid": dict(
            body={"userId": "e", "signed": signing.sign(w.enforced_secret, "e")}, api_key=enforced
        ),
        "enforced-missing": dict(body={"userId": "e"}, api_key=enforced),
        "enforced-invalid": dict(body={"userId": "e", "signed": "ab" * 32}, api_key=enforced),
        "bad-json": dict(body=b"{", api_key=web),
        "empty-body": dict(body=b"", api_key=web),
        "not-an-object": dict(body=b"[]", api_key=web),
        "wrong-type": dict(body={"userId": 42}, api_key=web),
        "not-utf8": dict(body=b'{"userId": "\xff"}', api_key=web),
        "oversized": dict(body={"fields": {"p": "x" * 70_000}}, api_key=web),
        "bad-content-length": dict(body={}, api_key=web, CONTENT_LENGTH="abc"),
        "huge-content-length": dict(body={}, api_key=web, CONTENT_LENGTH="99999999999"),
        "short-content-length": dict(body={"userId": "abc"}, api_key=web, CONTENT_LENGTH="5"),
        "chunked-no-length": dict(
            body={"userId": "x"}, api_key=web, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
        ),
        "bad-api-key": dict(body={}, api_key="tik_nope", HTTP_ORIGIN=ALLOWED),
        "no-api-key": dict(body={}),
        "nul-api-key": dict(body={}, api_key="tik_\x00"),
        "preflight-allowed": dict(
            method="OPTIONS",
            body=b"",
            HTTP_ORIGIN=ALLOWED,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        ),
        "preflight-other-origin": dict(
            method="OPTIONS",
            body=b"",
            HTTP_ORIGIN="https://evil.test",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        ),
        "preflight-for-get": dict(
            method="OPTIONS",
            body=b"",
            HTTP_ORIGIN=ALLOWED,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        ),
        "options-not-a-preflight": dict(method="OPTIONS", body=b""),
        "trailing-slash": dict(path=SESSIONS + "/", body={}, api_key=web),
        "bad-host": dict(body={}, api_key=web, HTTP_HOST="evil.example.org"),
        "bad-host-preflight": dict(
            method="OPTIONS",
            body=b"",
            HTTP_HOST="evil.example.org",
            HTTP_ORIGIN=ALLOWED,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        ),
        "malformed-host": dict(body={}, api_key=web, HTTP_HOST="id.example.com:x:y"),
        "other-allowed-host": dict(body={}, api_key=web, HTTP_HOST="id.example.com:8443"),
        "with-a-cookie": dict(body={}, api_key=web, HTTP_COOKIE="csrftoken=bad!; sessionid=x"),
        "get": dict(method="GET", body=b"", api_key=web),
        "head": dict(method="HEAD", body=b"", api_key=web),
        "put": dict(method="PUT", body={}, api_key=web),
        "delete": dict(method="DELETE", body=b"", api_key=web),
        "elsewhere-under-the-mount": dict(path=SESSIONS + "x", body={}, api_key=web),
        "elsewhere": dict(path="/", method="GET", body=b""),
    }


#: Answered by the wrapper itself; everything else goes on to Django.
LEAN = {
    "valid", "valid-from-allowed-origin", "valid-from-other-origin", "valid-https",
    "valid-upper-hex", "invalid", "public-key-valid", "public-key-forged", "missing",
    "visitor", "visitor-fields", "unicode-user",
    "enforced-valid", "enforced-missing", "enforced-invalid", "bad-json", "empty-body",
    "not-an-object", "wrong-type", "not-utf8", "oversized", "bad-content-length",
    "huge-content-length", "short-content-length", "chunked-no-length", "bad-api-key",
    "no-api-key", "nul-api-key", "preflight-allowed", "preflight-other-origin",
    "preflight-for-get", "options-not-a-preflight", "trailing-slash", "other-allowed-host",
}  # fmt: skip


def both(make_environ):
    spy = Spy(WSGIHandler())
    plain = []

    def make_lean():
        lean = LeanSessions(spy)
        assert lean.active
        plain.append(lean._plain_signals())
        return lean

    django_answer, lean_answer = answer(WSGIHandler, make_environ), answer(make_lean, make_environ)
    assert plain == [True], "the lean path sends no signal when only Django listens"
    return django_answer, lean_answer, spy.calls


@pytest.mark.parametrize("name", sorted(corpus(SimpleNamespace(
    web=SimpleNamespace(api_key=""), enforced=SimpleNamespace(api_key=""),
    web_secret="s", enforced_secret="s",
)).keys()))  # fmt: skip
def test_the_same_answer_on_both_paths(site, world, name):
    request = corpus(world)[name]
    (d_status, d_headers, d_body, d_counted), (l_status, l_headers, l_body, l_counted), passed = (
        both(lambda: environ(**request))
    )
    assert (l_status, l_headers, l_body) == (d_status, d_headers, d_body)
    assert l_counted == d_counted
    assert passed == (0 if name in LEAN else 1), "who answered"
    assert "application/json" in dict(d_headers)["Content-Type"] or name == "elsewhere"


def test_the_corpus_covers_every_answer(site, world):
    statuses = {
        both(lambda request=request: environ(**request))[0][0].split()[0]
        for request in corpus(world).values()
    }
    assert {"201", "204", "400", "401", "403", "405"} <= statuses


def test_rate_limited_on_both_paths(site, world, monkeypatch):
    site.TRUSTED_IDENTITY = {**site.TRUSTED_IDENTITY, "RATE_LIMIT": "1/m"}
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: 1_000_000.25))
    request = dict(body={}, api_key=world.web.api_key, HTTP_ORIGIN=ALLOWED)
    answers = []
    for make_app in (WSGIHandler, lambda: LeanSessions(WSGIHandler())):
        from django.core.cache import cache

        cache.clear()
        assert answer(make_app, lambda: environ(**request))[0].startswith("201")
        answers.append(answer(make_app, lambda: environ(**request)))
    assert answers[0] == answers[1]
    status, headers, _, _ = answers[1]
    assert status == "429 Too Many Requests" and ("Retry-After", "20") in headers


def test_rate_limit_keys_on_the_client_ip_header_on_both_paths(site, world, monkeypatch):
    site.TRUSTED_IDENTITY = {
        **site.TRUSTED_IDENTITY,
        "RATE_LIMIT": "1/m",
        "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
        "PROXY_COUNT": 1,
    }
    seen = []
    monkeypatch.setattr(ratelimit, "hit", lambda scope, identity, rate: seen.append(identity))
    request = dict(body={}, api_key=world.web.api_key, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    both(lambda: environ(**request))
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0].startswith("203.0.113.7:")


@pytest.mark.parametrize("secure", [False, True])
def test_the_https_redirect_is_djangos(site, world, secure):
    site.SECURE_SSL_REDIRECT = True
    request = dict(body={}, api_key=world.web.api_key, secure=secure)
    django_answer, lean_answer, passed = both(lambda: environ(**request))
    assert lean_answer == django_answer
    assert django_answer[0].startswith("201" if secure else "301")
    assert passed == (0 if secure else 1)


def test_security_headers_follow_the_settings(site, world):
    site.SECURE_HSTS_SECONDS = 0
    site.SECURE_REFERRER_POLICY = "no-referrer, strict-origin"
    site.SECURE_CROSS_ORIGIN_OPENER_POLICY = None
    site.X_FRAME_OPTIONS = "sameorigin"
    request = dict(body={}, api_key=world.web.api_key, secure=True)
    django_answer, lean_answer, passed = both(lambda: environ(**request))
    assert lean_answer == django_answer and passed == 0
    headers = dict(lean_answer[1])
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert headers["Referrer-Policy"] == "no-referrer,strict-origin"
    assert "Strict-Transport-Security" not in headers
    assert "Cross-Origin-Opener-Policy" not in headers


def test_script_name_is_respected(site, world):
    request = dict(body={}, api_key=world.web.api_key, SCRIPT_NAME="/id")
    django_answer, lean_answer, passed = both(lambda: environ(**request))
    assert lean_answer == django_answer and passed == 0


def test_a_bad_host_with_debug_on_is_djangos_answer(site, world):
    site.DEBUG = True
    request = dict(body={}, api_key=world.web.api_key, HTTP_HOST="evil.example.org")
    django_answer, lean_answer, passed = both(lambda: environ(**request))
    assert lean_answer[:2] == django_answer[:2] and passed == 1


def test_an_unknown_middleware_turns_the_lean_path_off(site, world, caplog):
    site.MIDDLEWARE = [*site.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    spy = Spy(WSGIHandler())
    lean = LeanSessions(spy)
    assert not lean.active
    assert "GZipMiddleware" in caplog.text
    call_wsgi(lambda: lean, environ(body={}, api_key=world.web.api_key))
    assert spy.calls == 1
    # Unless the site says it leaves session start alone.
    site.TRUSTED_IDENTITY = {
        **site.TRUSTED_IDENTITY,
        "LEAN_PATH_SKIPS_MIDDLEWARE": ["django.middleware.gzip.GZipMiddleware"],
    }
    assert LeanSessions(WSGIHandler()).active


def test_csrf_in_sessions_turns_the_lean_path_off(site):
    site.CSRF_USE_SESSIONS = True
    assert not LeanSessions(WSGIHandler()).active


def test_the_example_project_installs_the_wrapper():
    from project.wsgi import application

    assert isinstance(application, LeanSessions) and application.active


def test_the_lean_client_really_takes_the_lean_path(site, world, monkeypatch):
    seen = []
    original = LeanSessions.answer
    monkeypatch.setattr(
        LeanSessions, "answer", lambda self, *args: seen.append(1) or original(self, *args)
    )
    response = LeanClient().post(SESSIONS, {}, "application/json", HTTP_X_API_KEY=world.web.api_key)
    assert response.status_code == 201 and seen == [1]


def lean_or_django(lean: LeanSessions, spy: Spy, **request) -> str:
    """Who answered one request through ``lean``: "lean" or "django"."""
    before = spy.calls
    call_wsgi(lambda: lean, environ(**request))
    return "django" if spy.calls > before else "lean"


def test_a_remembered_host_verdict_never_lets_another_host_through(site, world):
    """The request checks' verdicts are remembered per Host (and what else they read):
    an allowed Host answered lean first does not let a refused one through after it,
    nor one forwarded in ``X-Forwarded-Host`` where the site trusts that header."""
    spy = Spy(WSGIHandler())
    lean = LeanSessions(spy)
    start = dict(body={}, api_key=world.web.api_key)
    assert lean_or_django(lean, spy, **start, HTTP_HOST="id.example.com") == "lean"
    assert lean_or_django(lean, spy, **start, HTTP_HOST="evil.example.org") == "django"
    assert lean_or_django(lean, spy, **start, HTTP_HOST="id.example.com") == "lean"
    assert lean_or_django(lean, spy, **start, HTTP_HOST="id.example.com:8443") == "lean"
    assert lean_or_django(lean, spy, **start, HTTP_HOST="evil.example.org:443") == "django"
    site.USE_X_FORWARDED_HOST = True
    forwarded = dict(start, HTTP_HOST="id.example.com")
    assert lean_or_django(lean, spy, **forwarded, HTTP_X_FORWARDED_HOST="evil.test") == "django"
    assert lean_or_django(lean, spy, **forwarded, HTTP_X_FORWARDED_HOST="testserver") == "lean"


def test_a_setting_change_is_seen_by_a_door_already_made(site, world):
    """``override_settings`` (the ``setting_changed`` signal) empties the remembered
    verdicts: a Host allowed before and refused now goes to Django."""
    spy = Spy(WSGIHandler())
    lean = LeanSessions(spy)
    start = dict(body={}, api_key=world.web.api_key, HTTP_HOST="id.example.com")
    assert lean_or_django(lean, spy, **start) == "lean"
    site.ALLOWED_HOSTS = ["testserver"]
    assert lean_or_django(lean, spy, **start) == "django"
    site.DISALLOWED_USER_AGENTS = [re.compile(r"^BadBot")]
    start = dict(start, HTTP_HOST="testserver")
    assert lean_or_django(lean, spy, **start, HTTP_USER_AGENT="App/1.0") == "lean"
    assert lean_or_django(lean, spy, **start, HTTP_USER_AGENT="BadBot/2") == "django"
    assert lean_or_django(lean, spy, **start, HTTP_USER_AGENT="App/1.0") == "lean"


def test_a_flood_of_made_up_hosts_is_bounded_and_still_refused(site, world):
    """An attacker with the public API key sending a new Host every request: every one
    is checked (each refused), the door remembers at most ``VERDICTS_MAX`` verdicts,
    and the real Host is still answered lean after the flood."""
    from trusted_identity.lean import VERDICTS_MAX

    spy = Spy(WSGIHandler())
    lean = LeanSessions(spy)
    start = dict(body={}, api_key=world.web.api_key)
    flood = VERDICTS_MAX * 2 + 7
    for n in range(flood):
        call_wsgi(lambda: lean, environ(**start, HTTP_HOST=f"h{n}.evil.test"))
        assert len(lean.door._verdicts) <= VERDICTS_MAX
    assert spy.calls == flood  # every made-up Host went to Django, which refused it
    assert lean_or_django(lean, spy, **start, HTTP_HOST="id.example.com") == "lean"


def test_the_lean_path_closes_its_threads_old_connections(site, world, monkeypatch):
    """Before and after each start, as ``close_old_connections`` does: every database
    connection of the answering thread (found once per thread, the same objects Django
    uses there), each closed if past ``CONN_MAX_AGE`` or unusable."""
    import threading

    from django.db import connections

    from trusted_identity import lean as lean_module
    from trusted_identity.runtime import close_thread_connections

    seen = []
    monkeypatch.setattr(lean_module, "close_old", lambda held: seen.append(held))
    lean = LeanSessions(WSGIHandler())

    def start(into: list) -> None:
        status, _, _ = call_wsgi(
            lambda: lean, environ(body={}, api_key=world.web.api_key), as_a_server=True
        )
        into.append((status, [connections[alias] for alias in connections]))

    def start_in_a_thread(into: list) -> None:
        try:
            start(into)
        finally:
            close_thread_connections()  # as a server's thread ends: none left open

    here, there = [], []
    start(here)
    start(here)
    thread = threading.Thread(target=start_in_a_thread, args=(there,))
    thread.start()
    thread.join(10)
    assert [status for status, _ in here + there] == ["201 Created"] * 3
    assert len(seen) == 6  # before and after each start
    for held, (_, expected) in zip(seen[::2], here + there, strict=True):
        assert [id(c) for c in held] == [id(c) for c in expected]
    assert seen[0] is seen[2] and seen[0] is not seen[4]  # found once per thread


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"SCRIPT_NAME": "/id"},
        {"SCRIPT_NAME": "/id/", "secure": True},
        {"HTTP_X_FORWARDED_PROTO": "https"},
        {"CONTENT_LENGTH": "5"},  # shorter than the body: five bytes read
        {"CONTENT_LENGTH": "-3"},
        {"CONTENT_LENGTH": "twelve"},
        {"CONTENT_LENGTH": ""},
    ],
)
def test_the_door_reads_a_request_as_django_does(site, extra):
    """What the decision reads of the door's ``DoorRequest`` is what it would read of
    Django's ``WSGIRequest`` of the same environ: path, scheme, method and body."""
    from django.core.handlers.wsgi import WSGIRequest

    from trusted_identity.wsgi import DoorRequest

    site.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    body = {"userId": "u-1", "signed": "0" * 64}
    door, django = (
        DoorRequest(environ(body=body, **extra)),
        WSGIRequest(environ(body=body, **extra)),
    )
    assert (door.path, door.is_secure(), door.method) == (
        django.path,
        django.is_secure(),
        django.method,
    )
    if extra.get("CONTENT_LENGTH") == "twelve":
        # Django 5.2 raises ValueError reading it, 6.1 reads nothing (as its stream's
        # limit says): read_json_body refuses it before either (bad-content-length).
        assert door.body == b""
    else:
        assert door.body == django.body


def test_a_body_over_djangos_own_limit_is_refused_on_both_paths(site, world):
    """``DATA_UPLOAD_MAX_MEMORY_SIZE`` below the app's ``MAX_BODY_BYTES``: Django's
    refusal of the body, the same answer on both paths."""
    site.DATA_UPLOAD_MAX_MEMORY_SIZE = 20
    request = dict(body={"userId": "u-1", "signed": "0" * 64}, api_key=world.web.api_key)
    django_answer, lean_answer, passed = both(lambda: environ(**request))
    assert lean_answer == django_answer and passed == 0
    assert django_answer[0].startswith("400") and b"larger than" in django_answer[2]


def test_a_logged_refusal_carries_djangos_request_with_its_body(site, world, caplog):
    """The door logs a 4xx as Django's handler does (``django.request``), with Django's
    own request object, its body the one the door read."""
    from django.core.handlers.wsgi import WSGIRequest

    body = {"userId": "u-1", "signed": "0" * 64}
    enforced = dict(body=body, api_key=world.enforced.api_key)
    with caplog.at_level("WARNING", logger="django.request"):
        status, _, _ = call_wsgi(lambda: LeanSessions(WSGIHandler()), environ(**enforced))
    assert status.startswith("403")
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert isinstance(record.request, WSGIRequest)
    assert json.loads(record.request.body) == body and record.status_code == 403


def test_a_remembered_verdict_is_the_paths_own(site, world):
    """The HTTPS redirect exempts paths by pattern, and the path holds the script name:
    a start under an exempt mount answered lean does not exempt the same start under
    another mount (Django redirects that one), nor the other way round."""
    site.SECURE_SSL_REDIRECT = True
    site.SECURE_REDIRECT_EXEMPT = [r"^id/"]
    spy = Spy(WSGIHandler())
    lean = LeanSessions(spy)
    start = dict(body={}, api_key=world.web.api_key)
    assert lean_or_django(lean, spy, **start, SCRIPT_NAME="/id") == "lean"
    assert lean_or_django(lean, spy, **start) == "django"
    assert lean_or_django(lean, spy, **start, SCRIPT_NAME="/id") == "lean"
    assert lean_or_django(lean, spy, **start, SCRIPT_NAME="/other") == "django"


def test_an_unusable_proxy_header_setting_is_djangos_to_answer(site, world):
    """``SECURE_PROXY_SSL_HEADER`` that is not a pair: Django raises reading the scheme;
    the door hands such a request to Django, which answers it (its 500), as before the
    verdict memo."""
    site.SECURE_PROXY_SSL_HEADER = "HTTP_X_FORWARDED_PROTO"
    spy = Spy(WSGIHandler())
    lean = LeanSessions(spy)
    assert lean_or_django(lean, spy, body={}, api_key=world.web.api_key) == "django"
