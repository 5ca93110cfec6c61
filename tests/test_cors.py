"""CORS on the session endpoint (CONTRACT section 7), through Django's test client.

The preflight carries no API key, so it is answered for an origin on any web
platform's list; the POST that follows gets ``Access-Control-Allow-Origin`` only for
an origin on the list of the platform its API key names.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_identity import signing
from trusted_identity.services import access, enforcement, lookup, origins, platform_secrets
from trusted_identity.views import CORS_ALLOW_HEADERS

from .factories import PlatformFactory, SpaceFactory
from .support import wait_out_window_edge

# Every test that uses the client runs on the Django view and on the lean path.
pytestmark = pytest.mark.both_paths

SESSIONS = "/trusted-identity/v1/sessions"
ALLOWED = "https://app.example.com"
OTHER_SPACES = "https://other.example.com"
UNLISTED = "https://evil.example.com"
CORS_HEADERS = {
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
    "Access-Control-Allow-Credentials",
    "Access-Control-Max-Age",
    "Access-Control-Expose-Headers",
}


@pytest.fixture
def web(space, commit):
    platform = PlatformFactory(space=space, kind="web")
    with commit():
        origins.allow_origin(platform, ALLOWED, access.get_cli_actor())
    return platform


@pytest.fixture
def other_web(db, commit):
    platform = PlatformFactory(space=SpaceFactory(slug="other"), kind="web")
    with commit():
        origins.allow_origin(platform, OTHER_SPACES, access.get_cli_actor())
    return platform


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


def preflight(client, origin, method="POST", headers="content-type,x-api-key"):
    extra = {"HTTP_ACCESS_CONTROL_REQUEST_METHOD": method}
    if origin is not None:
        extra["HTTP_ORIGIN"] = origin
    if headers:
        extra["HTTP_ACCESS_CONTROL_REQUEST_HEADERS"] = headers
    return client.options(SESSIONS, **extra)


def start(client, api_key, body=None, origin=ALLOWED, **extra):
    headers = {"HTTP_X_API_KEY": api_key} if api_key else {}
    if origin:
        headers["HTTP_ORIGIN"] = origin
    return client.post(
        SESSIONS, data=json.dumps(body or {}), content_type="application/json", **headers, **extra
    )


def cors_headers(response):
    return {name for name in CORS_HEADERS if response.has_header(name)}


def assert_cors_for(response, origin):
    assert response["Access-Control-Allow-Origin"] == origin
    assert "Origin" in response["Vary"]
    assert not response.has_header("Access-Control-Allow-Credentials")


def assert_no_cors(response):
    assert cors_headers(response) == set(), cors_headers(response)


# ------------------------------------------------------------------ the preflight


def test_preflight_for_an_allowed_origin(client, web, settings):
    response = preflight(client, ALLOWED, headers="content-type,x-api-key,x-sdk-version")
    assert response.status_code == 204
    assert response.content == b""
    assert_cors_for(response, ALLOWED)
    assert response["Access-Control-Allow-Methods"] == "POST"
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"content-type", "x-api-key", "x-app-version", "x-sdk-version"}
    assert response["Access-Control-Allow-Headers"] == CORS_ALLOW_HEADERS
    assert response["Access-Control-Max-Age"] == "3600"
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "CORS_MAX_AGE": 60}
    assert preflight(client, ALLOWED)["Access-Control-Max-Age"] == "60"


def test_preflight_for_an_origin_of_any_web_platform(client, web, other_web):
    """The preflight names no platform: an origin on any web platform's list is answered."""
    assert_cors_for(preflight(client, OTHER_SPACES), OTHER_SPACES)


@pytest.mark.parametrize(
    "origin",
    [
        UNLISTED,
        "null",
        "https://app.example.com.evil.com",
        "https://APP.example.com",
        ALLOWED + "/",
    ],
)
def test_preflight_for_any_other_origin_gets_no_cors_header(client, web, origin):
    response = preflight(client, origin)
    assert response.status_code == 204
    assert response["Content-Type"].startswith("application/json")
    assert_no_cors(response)


def test_preflight_for_another_method_gets_no_cors_header(client, web):
    assert_no_cors(preflight(client, ALLOWED, method="PUT"))
    assert_no_cors(preflight(client, ALLOWED, method="post"))


def test_options_that_is_not_a_preflight_is_still_the_json_405(client, web):
    for extra in ({}, {"HTTP_ORIGIN": ALLOWED}):
        response = client.options(SESSIONS, **extra)
        assert response.status_code == 405
        assert json.loads(response.content)["error"]["code"] == "method_not_allowed"
        assert_no_cors(response)
    response = preflight(client, None)
    assert response.status_code == 405


def test_a_warm_preflight_reads_nothing_from_the_database(client, web):
    preflight(client, ALLOWED)
    with CaptureQueriesContext(connection) as queries:
        assert_cors_for(preflight(client, ALLOWED), ALLOWED)
        assert_no_cors(preflight(client, UNLISTED))
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_preflight_follows_removal_at_once(client, web, commit):
    assert_cors_for(preflight(client, ALLOWED), ALLOWED)
    with commit():
        origins.deny_origin(web, ALLOWED, access.get_cli_actor())
    assert_no_cors(preflight(client, ALLOWED))


# ---------------------------------------------------------------------- the POST


def test_post_from_an_allowed_origin(client, web):
    response = start(client, web.api_key)
    assert response.status_code == 201
    assert_cors_for(response, ALLOWED)
    assert response["Access-Control-Expose-Headers"] == "Retry-After"
    assert not response.has_header("Access-Control-Allow-Methods")


def test_error_answers_carry_the_headers_too(client, web, commit):
    assert_cors_for(start(client, web.api_key, {"userId": ""}), ALLOWED)  # 400
    with commit():
        enforcement.set_enforcement(web, True, access.get_cli_actor(), force=True, reason="test")
    response = start(client, web.api_key, {"userId": "42", "signed": "0" * 64})
    assert response.status_code == 403
    assert json.loads(response.content)["error"]["code"] == "signature_invalid"
    assert_cors_for(response, ALLOWED)
    secret = platform_secrets.reveal_secret(web, access.get_cli_actor())
    response = start(client, web.api_key, {"userId": "42", "signed": signing.sign(secret, "42")})
    assert response.status_code == 201
    assert json.loads(response.content)["trusted"] is True
    assert_cors_for(response, ALLOWED)


def test_post_from_an_origin_of_another_platform_gets_no_cors_header(client, web, other_web):
    """The preflight passed (the origin is on *a* list), but not on this platform's."""
    response = start(client, web.api_key, origin=OTHER_SPACES)
    assert response.status_code == 201  # counted like any other start; the browser hides it
    assert_no_cors(response)
    assert response["Vary"] == "Origin"
    assert_cors_for(start(client, other_web.api_key, origin=OTHER_SPACES), OTHER_SPACES)


def test_post_from_an_unlisted_origin_gets_no_cors_header(client, web):
    response = start(client, web.api_key, origin=UNLISTED)
    assert response.status_code == 201
    assert_no_cors(response)
    assert response["Vary"] == "Origin"


def test_post_without_origin_has_no_cors_header(client, web):
    response = start(client, web.api_key, origin=None)
    assert response.status_code == 201
    assert_no_cors(response)


@pytest.mark.parametrize("kind", ["ios", "android", "roku"])
def test_other_kinds_never_answer_cors(client, web, kind):
    platform = PlatformFactory(space=web.space, kind=kind)
    response = start(client, platform.api_key)  # ALLOWED is on the web platform's list only
    assert response.status_code == 201
    assert_no_cors(response)


def test_an_unknown_api_key_is_readable_by_a_listed_origin_only(client, web):
    """No platform is named: the preflight's rule, so a listed page can read why it failed."""
    response = start(client, "tik_nope")
    assert response.status_code == 401
    assert_cors_for(response, ALLOWED)
    assert_no_cors(start(client, "tik_nope", origin=UNLISTED))
    assert_no_cors(start(client, None, origin=UNLISTED))


def test_rate_limited_answers_expose_retry_after(client, web, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "RATE_LIMIT": "1/m"}
    wait_out_window_edge(60)
    assert start(client, web.api_key).status_code == 201
    response = start(client, web.api_key)
    assert response.status_code == 429
    assert_cors_for(response, ALLOWED)
    assert int(response["Retry-After"]) >= 1
    assert "Retry-After" in response["Access-Control-Expose-Headers"]
    assert_no_cors(start(client, web.api_key, origin=UNLISTED))


def test_removal_takes_effect_on_the_next_post(client, web, commit):
    assert_cors_for(start(client, web.api_key), ALLOWED)
    with commit():
        origins.deny_origin(web, ALLOWED, access.get_cli_actor())
    assert_no_cors(start(client, web.api_key))
    with commit():
        origins.allow_origin(web, ALLOWED, access.get_cli_actor())
    assert_cors_for(start(client, web.api_key), ALLOWED)


def test_cors_adds_no_query_to_a_warm_start(client, web):
    start(client, web.api_key, origin=None)
    start(client, web.api_key)
    with CaptureQueriesContext(connection) as without_origin:
        start(client, web.api_key, origin=None)
    with CaptureQueriesContext(connection) as with_origin:
        assert_cors_for(start(client, web.api_key), ALLOWED)
    assert len(with_origin) == len(without_origin)


def test_a_database_outage_while_checking_gives_no_header_and_no_500(client, web, monkeypatch):
    from django.db import DatabaseError

    def down(*args, **kwargs):
        raise DatabaseError("down")

    monkeypatch.setattr(lookup, "every_allowed_origin", down)
    response = preflight(client, ALLOWED)
    assert response.status_code == 204
    assert_no_cors(response)
    response = start(client, "tik_nope")
    assert response.status_code == 401
    assert_no_cors(response)
