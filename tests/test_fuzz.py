"""Property-based fuzzing of everything a stranger can send (SECURITY.md, "Fuzzing").

Hypothesis generates session-start bodies (any JSON, any bytes, any content type,
huge and deeply nested values, odd encodings), ``X-Api-Key`` headers, sign-view
query strings and headers, methods and paths under the mount, Host headers, and
CLI argument lists. Every answer must be JSON with the contract's shape: never a
500, never HTML, and every non-2xx is ``{"error": {"code", "message"}}`` with a
known code. Where the contract decides the answer, an independent model of it
(written from CONTRACT.md and the documentation, not from the code) predicts the status
and the outcome, and the counts must add up to the starts sent.

The "ci" profile (tests/conftest.py) is derandomized: the same examples every run.
``FUZZ_SCALE=10`` multiplies every example count for a longer hunt.
"""

from __future__ import annotations

import json
import os
import re
import string
from urllib.parse import quote

import pytest
from hypothesis import given, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from trusted_identity import signing
from trusted_identity.conf import app_settings
from trusted_identity.services import platform_secrets
from trusted_identity.services.figures import readiness

from . import hardening
from .factories import PlatformFactory, SpaceFactory

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
MOUNT = "/trusted-identity/"
SESSIONS = MOUNT + "v1/sessions"
SIGN = MOUNT + "sign/"
SESSION_KEYS = {"sessionId", "anonymous", "userId", "trusted", "signature", "space", "platform"}
ERROR_CODES = {
    "invalid_request",
    "invalid_api_key",
    "not_authenticated",
    "signature_required",
    "signature_invalid",
    "platform_not_found",
    "not_found",
    "method_not_allowed",
    "rate_limited",
    "service_unavailable",
}
HEX = "0123456789abcdef"


def examples(n: int) -> hsettings:
    """This test's share of the run's cases (counted again as they run)."""
    return hsettings(max_examples=max(1, int(n * SCALE)))


def case(name: str) -> None:
    hardening.count("fuzz_cases")
    hardening.count(f"fuzz_cases.{name}")


# --------------------------------------------------------------- the contract


def check_answer(response, *, allow_empty: bool = False) -> dict | None:
    """What every answer under the mount must be, whatever was asked."""
    assert response.status_code != 500, response.content[:300]
    assert response.status_code < 500 or response.status_code == 503, response.status_code
    assert response["Content-Type"].startswith("application/json"), (
        response.status_code,
        response["Content-Type"],
        response.content[:200],
    )
    content = response.content
    lowered = content.lower()
    assert b"<html" not in lowered and b"<!doctype" not in lowered
    if allow_empty and not content:  # HEAD
        return None
    body = json.loads(content)
    if response.status_code >= 400:
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"] in ERROR_CODES, body
        message = body["error"]["message"]
        assert isinstance(message, str) and message.strip(), body
        assert "no-store" in response["Cache-Control"]
    return body


def expected_start(body: bytes, secrets: list[str], enforced: bool) -> tuple[int, str]:
    """The contract's answer to a session-start body: (status, code or signature).

    Written from CONTRACT.md section 4 and docs/http.md's "where the contract is
    silent" paragraph, independently of trusted_identity/.
    """
    if len(body) > app_settings.MAX_BODY_BYTES:
        return 400, "invalid_request"
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, NaN/Infinity
        return 400, "invalid_request"
    if not isinstance(payload, dict):
        return 400, "invalid_request"
    user_id, signed, fields = payload.get("userId"), payload.get("signed"), payload.get("fields")
    if fields is not None and not isinstance(fields, dict):
        return 400, "invalid_request"
    if user_id is not None and not isinstance(user_id, str):
        return 400, "invalid_request"
    if signed is not None and not isinstance(signed, str):
        return 400, "invalid_request"
    if user_id is not None and (
        user_id == ""
        or len(user_id) > app_settings.MAX_USER_ID_LENGTH
        or any(0xD800 <= ord(c) <= 0xDFFF for c in user_id)
    ):
        return 400, "invalid_request"
    if signed is not None and user_id is None:
        return 400, "invalid_request"
    if signed is not None and len(signed) > 256:
        return 400, "invalid_request"
    if user_id is None:
        return 201, "none"
    if not signed:
        return (403, "signature_required") if enforced else (201, "missing")
    good = {signing.sign(secret, user_id) for secret in secrets}
    if re.fullmatch(r"[0-9a-fA-F]{64}", signed) and signed.lower() in good:
        return 201, "valid"
    return (403, "signature_invalid") if enforced else (201, "invalid")


def _no_constants(name):
    raise ValueError(name)


# ------------------------------------------------------------------ the world


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def strict_hosts(settings):
    """DEBUG off and two allowed hosts, set once for all of a test's examples: a setting
    changed in each example would rebuild the doors and reset the runtime each time."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["testserver", "localhost"]


@pytest.fixture
def world(db, counts_as_served):
    space = SpaceFactory(slug="acme", name="Acme")
    open_platform = PlatformFactory(space=space, kind="ios")
    enforced = PlatformFactory(space=space, kind="android", enforced=True)
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="web")
    secrets = {
        p.kind: platform_secrets.current_secret_row(p).get_secret()
        for p in (open_platform, enforced)
    }
    return {
        "space": space,
        "platforms": {"ios": open_platform, "android": enforced, "other": other},
        "secrets": secrets,
    }


def post_start(client, api_key, body: bytes, content_type="application/json"):
    extra = {} if api_key is None else {"HTTP_X_API_KEY": api_key}
    return client.generic("POST", SESSIONS, body, content_type=content_type, **extra)


def tally(platform) -> int:
    figures = readiness(platform)
    return figures.identified + figures.visitor


# ---------------------------------------------------------- strategies: bodies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
user_ids = (
    st.text(min_size=1, max_size=40)
    | st.text(alphabet=string.printable, min_size=1, max_size=12)
    | st.sampled_from(["", " ", "42", " 42", "USER-1", "user-1", "\x00", "\ud800", "é", "e\u0301"])
    | st.integers(1020, 1030).map(lambda n: "u" * n)
)
#: How the test fills in ``signed``: left as generated, or computed from a secret.
SIGNATURE_PLANS = ["as-is", "valid", "valid-upper", "other-user", "one-off", "absent"]

session_payloads = st.fixed_dictionaries(
    {},
    optional={
        "userId": user_ids | json_values,
        "signed": st.text(alphabet=HEX + "ABCDEFxyz -", max_size=70) | json_values,
        "fields": st.dictionaries(st.text(max_size=10), json_values, max_size=4) | json_values,
        "extra": json_values,
    },
)


def fill_signature(payload: dict, plan: str, secret: str) -> dict:
    user_id = payload.get("userId")
    if plan == "as-is" or not isinstance(user_id, str) or not user_id:
        return payload
    try:
        good = signing.sign(secret, user_id)
    except UnicodeEncodeError:  # a lone surrogate: refused before any signature is read
        return payload
    if plan == "valid":
        return {**payload, "signed": good}
    if plan == "valid-upper":
        return {**payload, "signed": good.upper()}
    if plan == "other-user":
        return {**payload, "signed": signing.sign(secret, user_id + "x")}
    if plan == "one-off":
        return {**payload, "signed": good[:-1] + ("0" if good[-1] != "0" else "1")}
    return {key: value for key, value in payload.items() if key != "signed"}


def encode_body(payload, ensure_ascii: bool, indent) -> bytes:
    text = json.dumps(payload, ensure_ascii=ensure_ascii, indent=indent, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate makes invalid UTF-8


# ------------------------------------------------------- session start: bodies


@pytest.mark.both_paths
@examples(450)
@given(
    payload=session_payloads,
    plan=st.sampled_from(SIGNATURE_PLANS),
    kind=st.sampled_from(["ios", "android"]),
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
)
def test_session_start_any_json_object(
    client, world, debug, payload, plan, kind, ensure_ascii, indent
):
    case("session-json-object")
    platform = world["platforms"][kind]
    payload = fill_signature(payload, plan, world["secrets"][kind])
    body = encode_body(payload, ensure_ascii, indent)
    note(f"body={body[:300]!r}")
    # The figure the last passing example left (nothing else counts in between), else read:
    # an example that fails midway leaves none, so the next one reads it again.
    before = world.setdefault("tallies", {}).pop(kind, None)
    if before is None:
        before = tally(platform)

    response = post_start(client, platform.api_key, body)
    answer = check_answer(response)
    status, detail = expected_start(body, [world["secrets"][kind]], platform.enforced)
    assert response.status_code == status, (answer, status, detail)
    if status == 201:
        assert set(answer) == SESSION_KEYS
        assert answer["signature"] == detail
        assert answer["trusted"] is (detail == "valid")
        assert answer["anonymous"] is (detail == "none")
        assert answer["userId"] == payload.get("userId")
        assert (answer["space"], answer["platform"]) == ("acme", kind)
    else:
        assert answer["error"]["code"] == detail
    # Every decided start is counted once; a refused request is not counted.
    after = tally(platform)
    assert after == before + (1 if status in (201, 403) else 0)
    world["tallies"][kind] = after


@pytest.mark.both_paths
@examples(300)
@given(value=json_values, ensure_ascii=st.booleans())
def test_session_start_any_json_value(client, world, debug, value, ensure_ascii):
    case("session-json-value")
    body = encode_body(value, ensure_ascii, None)
    response = post_start(client, world["platforms"]["ios"].api_key, body)
    check_answer(response)
    status, _detail = expected_start(body, [world["secrets"]["ios"]], False)
    assert response.status_code == status


# Header values as a server hands them over: no CR, LF or NUL (gunicorn answers a
# NUL in a header with its own 400 before Django runs: tests/test_hostile_http.py;
# Django itself would fail building the request on "charset=\x00", before any
# middleware or view).
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "application/json; charset=latin-1",
        "application/json; charset=nonsense",
        "text/plain",
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "application/octet-stream",
        "",
        "*/*; q=ü",
    ]
) | st.text(max_size=30).filter(lambda t: not {"\n", "\r", "\x00"} & set(t))

ODD_ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1", "cp1252"]


@pytest.mark.both_paths
@examples(500)
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_session_start_any_bytes(client, world, debug, body, content_type):
    case("session-bytes")
    response = post_start(client, world["platforms"]["ios"].api_key, body, content_type)
    check_answer(response)
    status, _detail = expected_start(body, [world["secrets"]["ios"]], False)
    assert response.status_code == status


@pytest.mark.both_paths
@examples(200)
@given(
    payload=st.fixed_dictionaries(
        {"userId": st.text(min_size=1, max_size=20)},
        optional={"fields": st.dictionaries(st.text(max_size=5), st.text(max_size=5))},
    ),
    encoding=st.sampled_from(ODD_ENCODINGS),
    content_type=CONTENT_TYPES,
)
def test_session_start_odd_encodings(client, world, debug, payload, encoding, content_type):
    case("session-encodings")
    try:
        body = json.dumps(payload, ensure_ascii=False).encode(encoding)
    except UnicodeEncodeError:
        body = json.dumps(payload).encode(encoding)
    response = post_start(client, world["platforms"]["ios"].api_key, body, content_type)
    check_answer(response)
    # Only UTF-8 is JSON: anything else is refused unless it happens to be UTF-8 too.
    status, _detail = expected_start(body, [world["secrets"]["ios"]], False)
    assert response.status_code == status


NESTERS = {
    "list": (b"[", b"]"),
    "object": (b'{"a":', b"}"),
    "fields": (b'{"fields":{"a":', b"}}"),
}


@pytest.mark.both_paths
@examples(100)
@given(
    depth=st.integers(1, 200_000),
    nester=st.sampled_from(sorted(NESTERS)),
    closed=st.booleans(),
    padding=st.integers(0, 70_000),
    where=st.sampled_from(["userId", "signed", "fields", "extra"]),
    shape=st.sampled_from(["nested", "padded", "bigint"]),
)
def test_session_start_huge_and_deep(
    client, world, debug, depth, nester, closed, padding, where, shape
):
    case("session-huge-deep")
    if shape == "nested":
        opening, closing = NESTERS[nester]
        body = opening * depth + b"1" + (closing * depth if closed else b"")
    elif shape == "bigint":  # Python refuses integers of more than 4300 digits
        body = b'{"fields": {"n": 1' + b"0" * (padding % 9000) + b"}}"
    else:
        value = "p" * padding if where != "fields" else {"p": "p" * padding}
        body = json.dumps({"userId": "u", where: value} if where != "userId" else {where: value})
        body = body.encode()
    response = post_start(client, world["platforms"]["ios"].api_key, body)
    check_answer(response)
    status, _detail = expected_start(body, [world["secrets"]["ios"]], False)
    assert response.status_code == status


# --------------------------------------------------------------- the API key


def one_change(text: str, data, alphabet=None) -> str:
    """``text`` with one character substituted, inserted or deleted (never equal)."""
    alphabet = st.characters() if alphabet is None else alphabet
    how = data.draw(st.sampled_from(["substitute", "insert", "delete"]))
    if how == "delete" and len(text) > 1:
        i = data.draw(st.integers(0, len(text) - 1))
        return text[:i] + text[i + 1 :]
    if how == "insert":
        i = data.draw(st.integers(0, len(text)))
        return text[:i] + data.draw(alphabet) + text[i:]
    i = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(alphabet.filter(lambda c: c != text[i]))
    return text[:i] + replacement + text[i + 1 :]


@pytest.mark.both_paths
@examples(300)
@given(
    header=st.none()
    | st.text(max_size=140)
    | st.binary(max_size=140).map(lambda b: b.decode("latin-1"))
    | st.sampled_from(["", " ", "tik_", "\x00", "tik_\x00", "null", "*", "%", "' OR 1=1 --"]),
    body=st.sampled_from([b"{}", b'{"userId": "u"}', b"{", b""]),
)
def test_any_api_key_header(client, world, debug, header, body):
    case("api-key")
    real = {p.api_key for p in world["platforms"].values()}
    response = post_start(client, header, body)
    answer = check_answer(response)
    if header not in real:
        assert response.status_code == 401
        assert answer["error"]["code"] == "invalid_api_key"


@pytest.mark.both_paths
@examples(300)
@given(data=st.data())
def test_api_key_with_one_character_changed_is_refused(client, world, data):
    case("api-key-near-miss")
    platform = data.draw(st.sampled_from(sorted(world["platforms"])))
    api_key = world["platforms"][platform].api_key
    changed = one_change(api_key, data)
    note(f"changed={changed!r}")
    response = post_start(client, changed, b"{}")
    answer = check_answer(response)
    assert response.status_code == 401 and answer["error"]["code"] == "invalid_api_key"


# ------------------------------------------------- any method, any path, any host

METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "CONNECT", "PROPFIND"]
) | st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=8)
path_tails = (
    st.sampled_from(
        [
            "",
            "v1/sessions",
            "v1/sessions/",
            "sign/",
            "sign",
            "v1",
            "v2/sessions",
            "v1/sessions/x",
            "admin/",
            "../admin/",
            "%2e%2e/",
            "..;/",
            "\x00",
            "%00",
        ]
    )
    | st.text(max_size=30).map(lambda t: quote(t, safe="/"))
    | st.text(alphabet=string.printable, max_size=30).map(lambda t: quote(t, safe="/%;"))
)


@pytest.mark.both_paths
@examples(400)
@given(method=METHODS, tail=path_tails, body=st.binary(max_size=40), api_key=st.booleans())
def test_any_method_and_path_under_the_mount(client, world, debug, method, tail, body, api_key):
    case("method-path")
    extra = {"HTTP_X_API_KEY": world["platforms"]["ios"].api_key} if api_key else {}
    response = client.generic(method, MOUNT + tail, body, content_type="application/json", **extra)
    check_answer(response, allow_empty=method == "HEAD")
    if response.status_code == 405:
        assert response["Allow"]


HOSTS = st.text(max_size=30) | st.sampled_from(
    [
        "evil.example",
        "testserver:99999",
        "[::1",
        "a b",
        "host\x00",
        "..",
        "localhost:80:80",
        "-bad-.example",
        "xn--",
        "a" * 300,
        "127.0.0.1:",
        "@evil",
        "testserver\r\nX: y",
    ]
)


@pytest.mark.both_paths
@examples(300)
@given(
    host=HOSTS,
    path=st.sampled_from([SESSIONS, SIGN, MOUNT + "nope"]),
    method=st.sampled_from(["GET", "POST"]),
)
def test_any_host_header_with_debug_off(client, world, strict_hosts, host, path, method):
    """Django refuses a Host header it does not allow before any view runs; under the
    mount its answer is still the contract's JSON (trusted_identity.views.handler400)."""
    case("host-header")
    response = client.generic(
        method,
        path,
        b"{}",
        content_type="application/json",
        HTTP_HOST=host,
        HTTP_X_API_KEY=world["platforms"]["ios"].api_key,
    )
    check_answer(response)
    if response.status_code == 400 and host not in ("testserver", "localhost"):
        assert json.loads(response.content)["error"]["code"] == "invalid_request"


# ---------------------------------------------------------- the signature


printable_ids = st.text(min_size=1, max_size=80)
secrets_strategy = st.text(min_size=1, max_size=80) | st.text(
    alphabet=signing.SECRET_ALPHABET, min_size=48, max_size=48
).map(lambda tail: "tis_web_" + tail)


@examples(1500)
@given(user_id=printable_ids, secret=secrets_strategy, data=st.data())
def test_signature_accepts_any_id_and_rejects_any_single_change(user_id, secret, data):
    """Core property: any user id verifies with its signature; every single-character
    change to the signature (all 64 positions, to another hex digit or a non-hex
    character) and a random single-character change to the id are rejected."""
    case("signature-core")
    signed = signing.sign(secret, user_id)
    assert re.fullmatch(r"[0-9a-f]{64}", signed)
    assert signing.verify([secret], user_id, signed)
    assert signing.verify([secret], user_id, signed.upper())
    shift = data.draw(st.integers(0, 14), label="shift")
    for i, digit in enumerate(signed):
        other = HEX[(HEX.index(digit) + 1 + (shift + i) % 15) % 16]  # never the same digit
        assert not signing.verify([secret], user_id, signed[:i] + other + signed[i + 1 :])
    junk = data.draw(st.characters().filter(lambda c: c not in HEX + HEX.upper()), label="junk")
    i = data.draw(st.integers(0, 63), label="where")
    assert not signing.verify([secret], user_id, signed[:i] + junk + signed[i + 1 :])
    changed = one_change(user_id, data, st.characters(exclude_categories=("Cs",)))
    assert not signing.verify([secret], changed, signed)


@pytest.mark.both_paths
@examples(300)
@given(
    user_id=st.text(min_size=1, max_size=60) | st.integers(1000, 1024).map(lambda n: "é" * n),
    data=st.data(),
)
def test_signature_end_to_end_under_enforcement(client, world, user_id, data):
    """Through HTTP on an enforced platform: the signature is accepted for any user
    id; one character changed in the signature or in the id is a 403."""
    case("signature-http")
    platform = world["platforms"]["android"]
    signed = signing.sign(world["secrets"]["android"], user_id)

    def start(uid, sig):
        body = json.dumps({"userId": uid, "signed": sig}).encode()
        return post_start(client, platform.api_key, body)

    ok = start(user_id, signed)
    assert ok.status_code == 201, ok.content
    assert check_answer(ok)["trusted"] is True

    i = data.draw(st.integers(0, 63), label="position")
    digit = data.draw(st.sampled_from(HEX + "g").filter(lambda c: c != signed[i]), label="digit")
    bad = start(user_id, signed[:i] + digit + signed[i + 1 :])
    assert bad.status_code == 403 and check_answer(bad)["error"]["code"] == "signature_invalid"

    changed = one_change(user_id, data, st.characters(exclude_categories=("Cs",)))
    if len(changed) > app_settings.MAX_USER_ID_LENGTH:
        changed = changed[: app_settings.MAX_USER_ID_LENGTH]
        if changed == user_id:
            return
    other = start(changed, signed)
    assert other.status_code == 403, (changed, other.content)
    assert check_answer(other)["error"]["code"] == "signature_invalid"
