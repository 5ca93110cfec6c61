"""The HTTP contract (CONTRACT section 4): session start and the sign view, end to end.

Everything goes through Django's test client and the real service layer; nothing of
ours is mocked. Cache invalidation happens on commit, so tests that depend on it run
the writes inside ``django_capture_on_commit_callbacks(execute=True)``.
"""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from trusted_identity import signing
from trusted_identity.models import Outcome, Platform
from trusted_identity.services import access, diagnostics, enforcement, platform_secrets
from trusted_identity.services.figures import readiness

from .factories import PASSWORD, PlatformFactory, UserFactory

# Every test that uses the client runs on the Django view and on the lean path
# (tests/lean_client.py); the sign view's pass through the wrapper untouched.
pytestmark = pytest.mark.both_paths

SESSIONS = "/trusted-identity/v1/sessions"
SIGN = "/trusted-identity/sign/"
SESSION_KEYS = {"sessionId", "anonymous", "userId", "trusted", "signature", "space", "platform"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ----------------------------------------------------------------------- helpers


def start(client, api_key, body=None, *, raw=None, content_type="application/json", **extra):
    """POST a session start: ``body`` as JSON, or ``raw`` bytes/str as they are."""
    data = raw if raw is not None else json.dumps({} if body is None else body)
    headers = {} if api_key is None else {"HTTP_X_API_KEY": api_key}
    return client.post(SESSIONS, data=data, content_type=content_type, **headers, **extra)


def assert_json(response):
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return json.loads(response.content)


def assert_error(response, status, code):
    assert response.status_code == status, response.content[:300]
    body = assert_json(response)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "no-store" in response["Cache-Control"]
    return body


def secret_of(platform):
    return platform_secrets.reveal_secret(platform, access.get_cli_actor())


def set_app_settings(settings, **values):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, **values}


@pytest.fixture
def enforced(space):
    return PlatformFactory(space=space, kind="android", enforced=True)


@pytest.fixture
def user(db):
    return UserFactory(username="alice", is_staff=False)


@pytest.fixture
def user_client(client, user):
    assert client.login(username="alice", password=PASSWORD)
    return client


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


# ---------------------------------------------------------------- session start


def test_identified_valid_start(client, platform):
    signed = signing.sign(secret_of(platform), "user-1")
    response = start(client, platform.api_key, {"userId": "user-1", "signed": signed})
    assert response.status_code == 201
    body = assert_json(response)
    assert set(body) == SESSION_KEYS
    assert body["anonymous"] is False
    assert body["userId"] == "user-1"
    assert body["trusted"] is True
    assert body["signature"] == "valid"
    assert body["space"] == "acme"
    assert body["platform"] == "ios"
    assert isinstance(body["sessionId"], str) and len(body["sessionId"]) >= 16
    assert "no-store" in response["Cache-Control"]


def test_session_ids_differ(client, platform):
    first = assert_json(start(client, platform.api_key, {}))
    second = assert_json(start(client, platform.api_key, {}))
    assert first["sessionId"] != second["sessionId"]


def test_upper_case_hex_signature_is_valid(client, platform):
    signed = signing.sign(secret_of(platform), "user-1").upper()
    body = assert_json(start(client, platform.api_key, {"userId": "user-1", "signed": signed}))
    assert body["signature"] == "valid"
    assert body["trusted"] is True


@pytest.mark.parametrize(
    "signed",
    [
        "0" * 64,
        "not-hex",
        "g" * 64,
        "ab",
        " " + "0" * 63,
    ],
)
def test_invalid_signature_is_accepted_untrusted_without_enforcement(client, platform, signed):
    response = start(client, platform.api_key, {"userId": "user-1", "signed": signed})
    assert response.status_code == 201
    body = assert_json(response)
    assert set(body) == SESSION_KEYS
    assert body["trusted"] is False
    assert body["signature"] == "invalid"
    assert body["userId"] == "user-1"


def test_signature_of_another_user_is_invalid(client, platform):
    signed = signing.sign(secret_of(platform), "USER-1")
    body = assert_json(start(client, platform.api_key, {"userId": "user-1", "signed": signed}))
    assert body["signature"] == "invalid"


def test_signature_of_another_platform_is_invalid(client, platform, space):
    other = PlatformFactory(space=space, kind="web")
    signed = signing.sign(secret_of(other), "user-1")
    body = assert_json(start(client, platform.api_key, {"userId": "user-1", "signed": signed}))
    assert body["signature"] == "invalid"


@pytest.mark.parametrize(
    "payload", [{"userId": "u"}, {"userId": "u", "signed": None}, {"userId": "u", "signed": ""}]
)
def test_missing_signature(client, platform, payload):
    response = start(client, platform.api_key, payload)
    assert response.status_code == 201
    body = assert_json(response)
    assert body["signature"] == "missing"
    assert body["trusted"] is False
    assert body["anonymous"] is False


@pytest.mark.parametrize(
    "payload",
    [{}, {"fields": {"plan": "free", "age": 3}}, {"userId": None}, {"fields": None}],
)
def test_visitor(client, platform, payload):
    response = start(client, platform.api_key, payload)
    assert response.status_code == 201
    body = assert_json(response)
    assert set(body) == SESSION_KEYS
    assert body["anonymous"] is True
    assert body["userId"] is None
    assert body["signature"] == "none"
    assert body["trusted"] is False


@pytest.mark.parametrize(
    "user_id", ["Zoë", "用户-42", "a user with spaces", " 42", "😀", "x" * 1024]
)
def test_user_ids_are_used_exactly_as_given(client, platform, user_id):
    signed = signing.sign(secret_of(platform), user_id)
    body = assert_json(start(client, platform.api_key, {"userId": user_id, "signed": signed}))
    assert body["signature"] == "valid"
    assert body["userId"] == user_id


def test_trimmed_user_id_does_not_verify(client, platform):
    signed = signing.sign(secret_of(platform), " 42")
    body = assert_json(start(client, platform.api_key, {"userId": "42", "signed": signed}))
    assert body["signature"] == "invalid"


def test_visitors_are_welcome_under_enforcement(client, enforced):
    body = assert_json(start(client, enforced.api_key, {"fields": {"a": 1}}))
    assert body["signature"] == "none"


def test_enforced_valid_signature_is_accepted(client, enforced):
    signed = signing.sign(secret_of(enforced), "u1")
    response = start(client, enforced.api_key, {"userId": "u1", "signed": signed})
    assert response.status_code == 201
    assert assert_json(response)["platform"] == "android"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"userId": "u1"}, "signature_required"),
        ({"userId": "u1", "signed": ""}, "signature_required"),
        ({"userId": "u1", "signed": "0" * 64}, "signature_invalid"),
        ({"userId": "u1", "signed": "zz"}, "signature_invalid"),
    ],
)
def test_enforcement_rejects(client, enforced, payload, code):
    assert_error(start(client, enforced.api_key, payload), 403, code)
    figures = readiness(enforced)
    assert figures.rejected == 1
    assert figures.invalid == figures.missing == 0


@pytest.mark.parametrize(
    "api_key",
    [None, "", "tik_unknown", "x" * 10_000, "tik_" + "a" * 124, "\x00", "é"],
    ids=["absent", "empty", "unknown", "very-long", "129-chars", "nul", "non-ascii"],
)
def test_invalid_api_key(client, platform, api_key):
    assert_error(start(client, api_key, {}), 401, "invalid_api_key")


def test_api_key_is_not_fuzzy(client, platform):
    for near in (platform.api_key.upper(), platform.api_key + " ", platform.api_key[:-1]):
        assert_error(start(client, near, {}), 401, "invalid_api_key")


def test_api_key_is_checked_before_the_body(client, db):
    assert_error(start(client, "tik_nope", raw="{"), 401, "invalid_api_key")


HUGE_INT = "1" + "0" * 5000
MALFORMED_BODIES = {
    "empty": b"",
    "whitespace": b"  \n ",
    "null": b"null",
    "array": b"[]",
    "number": b"123",
    "string": b'"str"',
    "true": b"true",
    "truncated": b"{",
    "trailing-garbage": b"{} x",
    "single-quotes": b"{'userId': 'x'}",
    "int-user-id": b'{"userId": 42}',
    "float-user-id": b'{"userId": 4.2}',
    "bool-user-id": b'{"userId": true}',
    "signed-without-user-id": b'{"userId": null, "signed": "ab"}',
    "signed-only": b'{"signed": "ab"}',
    "empty-user-id": b'{"userId": ""}',
    "list-user-id": b'{"userId": ["a"]}',
    "object-user-id": b'{"userId": {"id": "a"}}',
    "int-signed": b'{"signed": 5, "userId": "x"}',
    "list-signed": b'{"signed": ["ab"], "userId": "x"}',
    "list-fields": b'{"fields": []}',
    "string-fields": b'{"fields": "a=b"}',
    "lone-surrogate": b'{"userId": "\\ud800"}',
    "too-long-user-id": json.dumps({"userId": "x" * 1025}).encode(),
    "too-long-signed": json.dumps({"userId": "x", "signed": "a" * 257}).encode(),
    "invalid-utf8": b'{"userId": "\xff\xfe"}',
    "latin1": '{"userId": "Zoë"}'.encode("latin-1"),
    "utf16": '{"userId": "x"}'.encode("utf-16"),
    "utf16-le-no-bom": '{"userId": "x"}'.encode("utf-16-le"),
    "deeply-nested": b"[" * 100_000,
    "deeply-nested-object": b'{"fields": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    "huge-integer": b'{"userId": ' + HUGE_INT.encode() + b"}",
    "huge-integer-in-fields": b'{"fields": {"n": ' + HUGE_INT.encode() + b"}}",
    "nan": b'{"userId": NaN}',
    "infinity": b'{"fields": {"n": Infinity}}',
    "negative-infinity": b"-Infinity",
    "oversized": json.dumps({"userId": "x", "fields": {"pad": "p" * (64 * 1024)}}).encode(),
}


@pytest.mark.parametrize("raw", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_malformed_bodies_are_invalid_requests(client, platform, debug, raw):
    response = start(client, platform.api_key, raw=raw)
    assert_error(response, 400, "invalid_request")
    assert b"<html" not in response.content.lower()
    figures = readiness(platform)
    assert figures.identified + figures.visitor == 0, "a refused request must not be counted"


def test_body_over_max_body_bytes_setting(client, platform, settings):
    set_app_settings(settings, MAX_BODY_BYTES=100)
    ok = json.dumps({"fields": {"p": "x" * 50}})
    too_big = json.dumps({"fields": {"p": "x" * 100}})
    assert start(client, platform.api_key, raw=ok).status_code == 201
    body = assert_error(start(client, platform.api_key, raw=too_big), 400, "invalid_request")
    assert "100" in body["error"]["message"]


@pytest.mark.parametrize("length", ["abc", "-5", "1e3", "99999999999999999999"])
def test_bad_content_length_header(client, platform, debug, length):
    response = start(client, platform.api_key, {}, CONTENT_LENGTH=length)
    assert_error(response, 400, "invalid_request")


def test_short_content_length_truncates_to_invalid_json(client, platform):
    response = start(client, platform.api_key, {"userId": "abc"}, CONTENT_LENGTH="5")
    assert_error(response, 400, "invalid_request")


def test_form_encoded_body(client, platform, debug):
    response = start(
        client,
        platform.api_key,
        raw="userId=x&signed=ab",
        content_type="application/x-www-form-urlencoded",
    )
    assert_error(response, 400, "invalid_request")


def test_multipart_body(client, platform, debug):
    response = client.post(SESSIONS, {"userId": "x"}, HTTP_X_API_KEY=platform.api_key)
    assert_error(response, 400, "invalid_request")


def test_json_body_with_another_content_type_is_read(client, platform):
    # The body decides, not the header: SDKs that send text/plain still work.
    response = start(client, platform.api_key, {"userId": "u"}, content_type="text/plain")
    assert response.status_code == 201
    assert assert_json(response)["signature"] == "missing"


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_other_methods_are_not_allowed(client, platform, debug, method):
    response = client.generic(
        method,
        SESSIONS,
        data=json.dumps({}),
        content_type="application/json",
        HTTP_X_API_KEY=platform.api_key,
    )
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]
    assert readiness(platform).visitor == 0


def test_trailing_slash_is_accepted(client, platform):
    response = client.post(
        SESSIONS + "/", data="{}", content_type="application/json", HTTP_X_API_KEY=platform.api_key
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "path",
    [
        "/trusted-identity/",
        "/trusted-identity/v2/sessions",
        "/trusted-identity/v1/sessions/extra",
        "/trusted-identity/sign",
        "/trusted-identity/admin/",
        "/trusted-identity/%ff%fe",
        "/trusted-identity/" + "a" * 5000,
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_paths_are_json_404(client, db, debug, path, method):
    response = getattr(client, method)(path)
    assert_error(response, 404, "not_found")


def test_csrf_is_not_needed_for_session_start(platform):
    csrf_client = Client(enforce_csrf_checks=True)
    response = start(csrf_client, platform.api_key, {})
    assert response.status_code == 201


def test_counting_matches_what_was_sent(client, platform, space):
    web = PlatformFactory(space=space, kind="web")
    signed = signing.sign(secret_of(platform), "u")
    sent = [
        ({"userId": "u", "signed": signed}, platform),
        ({"userId": "u", "signed": signed}, platform),
        ({"userId": "u", "signed": signed.upper()}, platform),
        ({"userId": "v", "signed": signed}, platform),
        ({"userId": "u"}, platform),
        ({}, platform),
        ({"fields": {"a": 1}}, platform),
        ({"userId": "u", "signed": signed}, web),
        ({}, web),
    ]
    for payload, target in sent:
        assert start(client, target.api_key, payload).status_code == 201
    # Refused requests are not counted.
    start(client, platform.api_key, raw=b"{")
    start(client, "tik_unknown", {})

    (acme,) = diagnostics.status("acme")
    by_kind = {p["kind"]: p for p in acme["platforms"]}
    assert by_kind["ios"]["valid"] == 3
    assert by_kind["ios"]["invalid"] == 1
    assert by_kind["ios"]["missing"] == 1
    assert by_kind["ios"]["visitor"] == 2
    assert by_kind["ios"]["rejected"] == 0
    # Judged by users: "u" signed validly, "v" did not; 3 of the 5 identified starts.
    assert by_kind["ios"]["distinct"] == {
        "valid": 1,
        "identified": 2,
        "failing": 2,
        "forms": {"token": 0, "public-key": 0},
    }
    assert by_kind["ios"]["valid_share"] == pytest.approx(1 / 2)
    assert by_kind["ios"]["start_valid_share"] == pytest.approx(3 / 5)
    assert by_kind["web"]["invalid"] == 1
    assert by_kind["web"]["visitor"] == 1
    assert by_kind["web"]["valid"] == 0


def test_rejections_are_counted(client, enforced):
    signed = signing.sign(secret_of(enforced), "u")
    start(client, enforced.api_key, {"userId": "u", "signed": signed})
    start(client, enforced.api_key, {"userId": "u"})
    start(client, enforced.api_key, {"userId": "u", "signed": "0" * 64})
    start(client, enforced.api_key, {})
    figures = readiness(enforced)
    assert (figures.valid, figures.rejected, figures.visitor) == (1, 2, 1)
    assert figures.invalid == figures.missing == 0


# ------------------------------------------------------- caching and invalidation


def test_rotation_takes_effect_at_once_with_a_warm_cache(
    client, platform, django_capture_on_commit_callbacks
):
    old = secret_of(platform)
    old_signed = signing.sign(old, "u")
    body = assert_json(start(client, platform.api_key, {"userId": "u", "signed": old_signed}))
    assert body["signature"] == "valid"  # the lookup cache is now warm

    with django_capture_on_commit_callbacks(execute=True):
        new = platform_secrets.rotate_secret(platform, access.get_cli_actor())
    assert new != old
    new_signed = signing.sign(new, "u")
    body = assert_json(start(client, platform.api_key, {"userId": "u", "signed": new_signed}))
    assert body["signature"] == "valid"
    # The default grace keeps the previous secret verifying.
    body = assert_json(start(client, platform.api_key, {"userId": "u", "signed": old_signed}))
    assert body["signature"] == "valid"


def test_rotation_with_no_grace_rejects_the_old_secret_at_once(
    client, enforced, django_capture_on_commit_callbacks
):
    old_signed = signing.sign(secret_of(enforced), "u")
    response = start(client, enforced.api_key, {"userId": "u", "signed": old_signed})
    assert response.status_code == 201

    with django_capture_on_commit_callbacks(execute=True):
        new = platform_secrets.rotate_secret(enforced, access.get_cli_actor(), grace=timedelta(0))
    response = start(client, enforced.api_key, {"userId": "u", "signed": old_signed})
    assert_error(response, 403, "signature_invalid")
    response = start(client, enforced.api_key, {"userId": "u", "signed": signing.sign(new, "u")})
    assert response.status_code == 201


def test_enforcement_change_takes_effect_at_once(
    client, platform, django_capture_on_commit_callbacks
):
    assert start(client, platform.api_key, {"userId": "u"}).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        enforcement.set_enforcement(platform, True, access.get_cli_actor(), force=True, reason="t")
    assert_error(start(client, platform.api_key, {"userId": "u"}), 403, "signature_required")
    with django_capture_on_commit_callbacks(execute=True):
        enforcement.set_enforcement(platform, False, access.get_cli_actor())
    assert start(client, platform.api_key, {"userId": "u"}).status_code == 201


def test_deleted_platform_key_is_refused_at_once(
    client, platform, django_capture_on_commit_callbacks
):
    api_key = platform.api_key
    assert start(client, api_key, {}).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        Platform.objects.get(pk=platform.pk).delete()
    assert_error(start(client, api_key, {}), 401, "invalid_api_key")


def test_deleted_space_keys_are_refused_at_once(
    client, platform, space, django_capture_on_commit_callbacks
):
    api_key = platform.api_key
    assert start(client, api_key, {}).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        space.delete()
    assert_error(start(client, api_key, {}), 401, "invalid_api_key")


def test_warm_lookup_needs_no_platform_queries(client, platform):
    start(client, platform.api_key, {})
    # Warm: no platform, space or secret looked up; only the count's write (inside a
    # savepoint, since the test runs in a transaction): the count writer's one query
    # for the platforms that still exist (per flush; a serving process flushes off the
    # request), and its upsert.
    with CaptureQueriesContext(connection) as queries:
        assert start(client, platform.api_key, {}).status_code == 201
    statements = [q["sql"] for q in queries.captured_queries]
    looked_up = ('_platform"', '_space"', '_platformsecret"', '_allowedorigin"')
    still_there = 'SELECT "id" FROM "trusted_identity_platform" WHERE "id" IN'  # flushsql
    reads = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    lookups = [sql for sql in reads if not sql.startswith(still_there)]
    assert len(reads) - len(lookups) == 1
    assert not [sql for sql in lookups if any(table in sql for table in looked_up)]
    writes = [sql for sql in statements if "trusted_identity_outcomecount" in sql]
    assert len(writes) == 1 and writes[0].lstrip().upper().startswith("INSERT")
    assert "ON CONFLICT" in writes[0]
    assert readiness(platform).visitor == 2


def test_warm_buffered_start_makes_no_query_at_all(client, platform, counts_as_served):
    start(client, platform.api_key, {})
    with CaptureQueriesContext(connection) as queries:
        assert start(client, platform.api_key, {}).status_code == 201
    assert queries.captured_queries == []
    assert readiness(platform).visitor == 2  # flushed by the figures read


def test_outcomes_enum_matches_contract():
    assert set(Outcome.values) == {"valid", "invalid", "missing", "visitor", "rejected"}


@given(
    # Any code point, lone surrogates too (a JSON body's "\ud800" decodes to one).
    user_id=st.one_of(st.none(), st.text(st.characters(exclude_categories=()), max_size=40)),
    signature=st.sampled_from(["valid", "invalid", "missing", "none"]),
    space=st.text(min_size=1, max_size=20),
    platform=st.sampled_from(["web", "ios", "android", "tv"]),
)
@hypothesis_settings(max_examples=300, deadline=None)
def test_a_started_sessions_answer_is_the_json_encoders_to_the_byte(
    user_id, signature, space, platform
):
    """Session start's answer is written from its fields (``views.json_bytes``): the same
    bytes as ``JsonResponse``'s encoder gives its ``as_dict()``, for any user id (quotes,
    backslashes, control characters, lone surrogates, any script) and for a visitor's
    null."""
    from django.core.serializers.json import DjangoJSONEncoder

    from trusted_identity.services.sessions import SessionStart
    from trusted_identity.views import json_bytes

    started = SessionStart("s3ss10n_-Id", user_id, signature, space, platform)
    expected = json.dumps(started.as_dict(), cls=DjangoJSONEncoder).encode()
    assert json_bytes(started) == expected
