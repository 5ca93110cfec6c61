"""Property-based fuzzing of the token form (CONTRACT section 9), in the style of
``test_fuzz.py``: no input is a 500 or HTML, every bad token gets the same public
answer, and an independent model of the rules (written from docs/signing.md, not from
``trusted_identity/tokens.py``) predicts which tokens are valid.

Tokens are built from generated headers and claims (any ``alg``, any member, any
claim of any JSON type around the frozen clock), signed with the platform's secret, a
wrong one or not at all, and sometimes changed by one character afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math

import jwt
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from tests.support import verify_user_id
from trusted_identity import runtime, tokens
from trusted_identity.services import (
    access,
    lookup,
    platform_secrets,
    signature_forms,
    verification,
)
from trusted_identity.services.verification import sign_token, verify_signed
from trusted_identity.signing import HmacKey

from . import hardening
from .factories import PlatformFactory, SpaceFactory
from .test_fuzz import case, check_answer, examples, one_change, post_start

NOW = 1_800_000_000
LEEWAY = 60
MAX_AGE = 3600
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# ------------------------------------------------------------- the model


def _number(value) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


def model_valid(header, claims, signed_right: bool, user_id: str) -> bool:
    """The documented rules for a token (docs/signing.md), applied to what was generated."""
    if not signed_right or not isinstance(header, dict) or not isinstance(claims, dict):
        return False
    if header.get("alg") != "HS256" or set(header) - {"alg", "typ", "kid"}:
        return False
    if "typ" in header and not (isinstance(header["typ"], str) and header["typ"].upper() == "JWT"):
        return False
    if "kid" in header and not isinstance(header["kid"], str):
        return False
    sub, iat, exp = claims.get("sub"), claims.get("iat"), claims.get("exp")
    if not (isinstance(sub, str) and _number(iat) and _number(exp)) or "aud" in claims:
        return False
    if "nbf" in claims and not _number(claims["nbf"]):
        return False
    if "jti" in claims and not isinstance(claims["jti"], str):
        return False
    return (
        sub == user_id
        and iat < exp
        and exp - iat <= MAX_AGE
        and exp > NOW - LEEWAY
        and iat <= NOW + LEEWAY
        and claims.get("nbf", NOW) <= NOW + LEEWAY
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def build(header, claims, key: bytes | None) -> str:
    head = b64(json.dumps(header).encode("utf-8", "surrogatepass"))
    body = b64(json.dumps(claims).encode("utf-8", "surrogatepass"))
    if key is None:
        return f"{head}.{body}."
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


# ------------------------------------------------------------- strategies

times = st.one_of(
    st.integers(NOW - 2 * MAX_AGE, NOW + 2 * MAX_AGE),
    st.sampled_from([NOW - LEEWAY, NOW - LEEWAY + 1, NOW + LEEWAY, NOW + LEEWAY + 1, 0, -1]),
    st.floats(NOW - MAX_AGE, NOW + MAX_AGE),
    st.sampled_from([10**30, -(10**30), 1e308, True, None, "1800000000", [NOW], math.inf]),
)
algs = (
    st.sampled_from(
        [
            *("HS256", "HS256", "HS256", "none", "None", "HS384", "HS512", "RS256", "ES256"),
            *("PS256", "hs256", "HS256 ", "", "EdDSA"),
        ]
    )
    | st.none()
    | st.integers()
    | st.text(max_size=8)
)
headers = st.fixed_dictionaries(
    {"alg": algs},
    optional={
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt", "JOSE"]) | st.integers(),
        "kid": st.text(max_size=20) | st.integers() | st.none(),
        "crit": st.lists(st.text(max_size=5), max_size=2),
        "jku": st.just("https://evil.example/keys"),
        "jwk": st.just({"kty": "oct", "k": "AAAA"}),
        "x5u": st.just("https://evil.example/c.pem"),
        "b64": st.booleans(),
        "cty": st.just("JWT"),
    },
) | st.just({"alg": "HS256", "typ": "JWT"})
user_ids = st.sampled_from(["42", " 42", "USER-1", "user-1", "Zoë"]) | st.text(
    min_size=1, max_size=20
)


def claims_for(user_id_strategy):
    return st.fixed_dictionaries(
        {},
        optional={
            "sub": user_id_strategy | st.integers() | st.none(),
            "iat": times,
            "exp": times,
            "nbf": times,
            "jti": st.text(max_size=8) | st.integers(),
            "aud": st.text(max_size=8),
            "iss": st.text(max_size=8),
        },
    )


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)
    space = SpaceFactory(slug="acme")
    actor = access.get_cli_actor()
    platforms = {}
    for kind, enforced in (("ios", False), ("android", True)):
        platform = PlatformFactory(space=space, kind=kind, enforced=enforced)
        signature_forms.set_signature_form(
            platform,
            "token",
            actor,
            max_age=signature_forms.parse_max_age("1h"),
            force=True,
            reason="f",
        )
        platforms[kind] = platform
    runtime.current().reset()
    secrets = {kind: platform_secrets.reveal_secret(p, actor) for kind, p in platforms.items()}
    return {"platforms": platforms, "secrets": secrets}


# ------------------------------------------------------------------ tests


@examples(600)
@given(text=st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_.=+/ -]{0,200}", fullmatch=True))
def test_the_parser_never_raises_on_any_text(text):
    case("token-parser-text")
    key = HmacKey("tis_ios_" + "k" * 48)
    reason = tokens.verify_token(
        [key], "42", text, now=NOW, leeway=LEEWAY, max_age=MAX_AGE, max_length=4096
    )
    assert reason in tokens.REASONS


@examples(500)
@given(
    header=headers,
    claims=claims_for(user_ids),
    user_id=user_ids,
    signer=st.sampled_from(["right", "right", "right", "wrong", "none"]),
    mutate=st.sampled_from([False, False, True]),
    data=st.data(),
)
def test_structured_tokens_through_session_start(
    client, world, header, claims, user_id, signer, mutate, data
):
    """Any generated token through HTTP, on a token-only platform with and without
    enforcement: valid exactly when the model says so; every other one answered the same
    way, never a 500 or HTML; and what we accept, PyJWT accepts."""
    case("token-structured-http")
    kind = data.draw(st.sampled_from(["ios", "android"]), label="kind")
    platform, secret = world["platforms"][kind], world["secrets"][kind]
    plan = data.draw(st.sampled_from(["generated", "near-valid", "near-valid-tweaked"]))
    if plan != "generated":  # around the edges of the rules, where mistakes hide
        lifetime = data.draw(
            st.sampled_from([MAX_AGE, 600, 1]) | st.integers(-1, MAX_AGE + 1), label="lifetime"
        )
        expires_in = data.draw(  # exp relative to the clock, the edges of the leeway included
            st.sampled_from([30, 300, -LEEWAY - 1, -LEEWAY, -LEEWAY + 1])
            | st.integers(-MAX_AGE, MAX_AGE),
            label="expires_in",
        )
        iat = NOW + expires_in - lifetime
        base = {"sub": user_id, "iat": iat, "exp": iat + lifetime}
        if plan == "near-valid-tweaked" and claims:  # one generated claim over the base
            name = data.draw(st.sampled_from(sorted(claims)), label="tweaked")
            claims = {**base, name: claims[name]}
        else:
            claims = base
        if plan == "near-valid" or data.draw(st.booleans(), label="keep-header"):
            header = {"alg": "HS256", "typ": "JWT"}
    key = {"right": secret.encode(), "wrong": b"tis_ios_wrong-" + b"x" * 40, "none": None}[signer]
    signed = build(header, claims, key)
    expected = model_valid(header, claims, signer == "right", user_id)
    if mutate:
        changed = one_change(signed, data, st.sampled_from(B64URL + ".=+/ é"))
        expected = expected and changed == signed
        signed = changed
    note(f"header={header!r} claims={claims!r} user_id={user_id!r} signed={signed!r}")
    body = json.dumps({"userId": user_id, "signed": signed}).encode("utf-8", "surrogatepass")
    response = post_start(client, platform.api_key, body)
    answer = check_answer(response)
    if len(signed) > 256 and signed.count(".") != 2:  # no longer a token's shape: too long
        assert response.status_code == 400 and answer["error"]["code"] == "invalid_request"
        return
    if expected:
        hardening.count("fuzz_cases.token-structured-http-valid")  # of the cases above
        assert response.status_code == 201 and answer["signature"] == "valid", answer
        claims_seen = jwt.decode(
            signed,
            secret,
            algorithms=["HS256"],
            options={"verify_exp": 0, "verify_iat": 0, "verify_nbf": 0},
        )
        assert claims_seen["sub"] == user_id
    elif platform.enforced:
        assert response.status_code == 403, answer
        assert answer == {
            "error": {
                "code": "signature_invalid",
                "message": "the signature does not match the userId for this platform",
            }
        }
    else:
        assert response.status_code == 201 and answer["signature"] == "invalid", answer
        assert answer["trusted"] is False


def pyjwt_verdict(signed: str, secret: bytes, user_id: str) -> bool:
    """PyJWT's ``jwt.decode`` with the documented rules it can check at a frozen clock."""
    try:
        claims = jwt.decode(
            signed,
            secret,
            algorithms=["HS256"],
            options={"require": ["sub", "iat", "exp"], "verify_exp": False, "verify_iat": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        return False
    return claims["sub"] == user_id


@examples(600)
@given(
    header=headers,
    claims=claims_for(user_ids),
    user_id=user_ids,
    signer=st.sampled_from(["right", "right", "right", "wrong", "none"]),
    mutate=st.sampled_from([False, False, True]),
    data=st.data(),
)
def test_the_hand_check_agrees_with_the_model_and_never_goes_past_pyjwt(
    header, claims, user_id, signer, mutate, data
):
    """The verifier (no PyJWT on its path) against the independent model, and against
    PyJWT itself: every token it accepts, ``jwt.decode`` accepts with the same key and
    subject; every token PyJWT refuses for its signature, algorithm or encoding, it
    refuses too."""
    case("token-differential")
    secret = b"tis_ios_" + b"d" * 48
    key = {"right": secret, "wrong": b"tis_ios_wrong-" + b"x" * 40, "none": None}[signer]
    signed = build(header, claims, key)
    expected = model_valid(header, claims, signer == "right", user_id)
    if mutate:
        changed = one_change(signed, data, st.sampled_from(B64URL + ".=+/ é"))
        expected = expected and changed == signed
        signed = changed
    note(f"header={header!r} claims={claims!r} user_id={user_id!r} signed={signed!r}")
    reason = tokens.verify_token(
        [HmacKey(secret)], user_id, signed, now=NOW, leeway=LEEWAY, max_age=MAX_AGE
    )
    assert reason in (None, *tokens.REASONS)
    assert (reason is None) == expected, reason
    if reason is None:
        assert pyjwt_verdict(signed, secret, user_id)
    try:
        jwt.decode(
            signed,
            secret,
            algorithms=["HS256"],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.DecodeError):
        assert reason is not None
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        pass  # a claim PyJWT checks its way: the model and pyjwt_verdict above decide


@examples(200)
@given(user_id=st.text(min_size=1, max_size=60), data=st.data())
def test_every_one_character_change_of_a_valid_token_is_refused(world, user_id, data):
    """Any valid token verifies; each single-character change (at a drawn position,
    substitution, insertion or deletion, any character) does not."""
    case("token-one-change")
    platform = world["platforms"]["ios"]
    snapshot = lookup.lookup_platform(platform.api_key)
    made = sign_token(snapshot, user_id)
    assert verify_user_id(snapshot, user_id, made.token)
    for _ in range(5):
        changed = one_change(made.token, data, st.characters(exclude_categories=("Cs",)))
        result = verify_signed(snapshot, user_id, changed)
        assert not result.valid, changed
    other = one_change(user_id, data, st.characters(exclude_categories=("Cs",)))
    assert verify_signed(snapshot, other, made.token).reason == "token_subject_mismatch"


@examples(200)
@given(
    segments=st.lists(st.text(alphabet=B64URL, max_size=60), min_size=3, max_size=3),
    user_id=user_ids,
)
def test_random_base64url_tokens_get_the_one_answer(client, world, segments, user_id):
    case("token-random-segments")
    signed = ".".join(segments)
    body = json.dumps({"userId": user_id, "signed": signed}).encode("utf-8", "surrogatepass")
    response = post_start(client, world["platforms"]["android"].api_key, body)
    answer = check_answer(response)
    assert response.status_code == 403 and answer["error"]["code"] == "signature_invalid"
