"""Public-key tokens (``trusted_identity.keytokens``, CONTRACT section 10): ES256, EdDSA
and RS256 verified with a platform's public keys, the key picked by ``kid``, the
algorithm pinned to the key's type, and every algorithm confusion refused."""

from __future__ import annotations

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusted_identity import keytokens
from trusted_identity.keytokens import (
    KEY_EXPIRED,
    UNKNOWN_KEY,
    KeySet,
    make_key_token,
    verify_key_token,
)
from trusted_identity.publickeys import parse_public_key
from trusted_identity.tokens import (
    NO_MATCH,
    TOKEN_EXPIRED,
    TOKEN_MALFORMED,
    TOKEN_SUBJECT_MISMATCH,
    TOKEN_TOO_LONG_LIVED,
    TokenMemo,
)

from .keytoken_helpers import (
    DAY,
    HOUR,
    NOW,
    b64,
    key_set,
    key_token,
    part,
    private_keys,
    public_pem_of,
)

PRIVATE = private_keys()
OTHER = private_keys()
ALGS = ["ES256", "EdDSA", "RS256"]
MEMO = TokenMemo()


@pytest.fixture(autouse=True)
def _forget():
    MEMO.clear()
    yield
    MEMO.clear()


def check(keys: KeySet, token: str, user_id="42", now=NOW, **kw):
    kw.setdefault("memo", MEMO)
    return verify_key_token(keys, user_id, token, now=now, leeway=60, max_age=DAY, **kw)


def reason(keys, token, **kw):
    return check(keys, token, **kw)[0]


# --------------------------------------------------------------------- valid


@pytest.mark.parametrize("alg", ALGS)
def test_a_token_pyjwt_makes_verifies_with_or_without_a_kid(alg):
    keys = key_set(("k1", PRIVATE[alg]))
    made = make_key_token(PRIVATE[alg], alg, "42", NOW, NOW + HOUR, "k1")
    found, key = check(keys, made)
    assert found is None and key is keys.keys[0] and key.key_id == 1
    assert jwt.get_unverified_header(made) == {"alg": alg, "typ": "JWT", "kid": "k1"}
    # The platform has one key: the kid may be left out.
    assert reason(keys, make_key_token(PRIVATE[alg], alg, "42", NOW, NOW + HOUR, None)) is None
    assert reason(keys, key_token(PRIVATE[alg], alg=alg, kid="k1")) is None
    # PyJWT itself accepts it with the public key.
    claims = jwt.decode(
        made,
        public_pem_of(PRIVATE[alg]),
        algorithms=[alg],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == "42"


def test_the_kid_picks_the_key_among_several():
    keys = key_set(("ec", PRIVATE["ES256"]), ("ed", PRIVATE["EdDSA"]), ("rsa", PRIVATE["RS256"]))
    for kid, alg in (("ec", "ES256"), ("ed", "EdDSA"), ("rsa", "RS256")):
        found, key = check(keys, key_token(PRIVATE[alg], alg=alg, kid=kid))
        assert found is None and key.kid == kid
    # Without a kid, three keys: which one is not guessed.
    assert reason(keys, key_token(PRIVATE["ES256"], alg="ES256")) == UNKNOWN_KEY
    assert reason(keys, key_token(PRIVATE["ES256"], alg="ES256", kid="nope")) == UNKNOWN_KEY
    # A kid naming another key of the same type: that key's signature is checked.
    two = key_set(("a", PRIVATE["ES256"]), ("b", OTHER["ES256"]))
    assert reason(two, key_token(PRIVATE["ES256"], alg="ES256", kid="b")) == NO_MATCH
    assert reason(two, key_token(PRIVATE["ES256"], alg="ES256", kid="a")) is None


def test_expired_keys():
    keys = key_set(("old", PRIVATE["ES256"]), ("new", OTHER["ES256"]), expires={"old": NOW})
    old = key_token(PRIVATE["ES256"], alg="ES256", kid="old")
    assert check(keys, old)[0] == KEY_EXPIRED
    assert reason(keys, old, now=NOW - 1) is None  # before its expiry
    # No kid, one key left that verifies: that one.
    assert reason(keys, key_token(OTHER["ES256"], alg="ES256")) is None
    assert reason(keys, key_token(PRIVATE["ES256"], alg="ES256")) == NO_MATCH
    # The only key, expired: key_expired, not unknown.
    alone = key_set(("old", PRIVATE["ES256"]), expires={"old": NOW - 5})
    assert reason(alone, key_token(PRIVATE["ES256"], alg="ES256")) == KEY_EXPIRED
    both_gone = key_set(("a", PRIVATE["ES256"]), ("b", OTHER["ES256"]), expires={"a": 1, "b": 1})
    assert reason(both_gone, key_token(PRIVATE["ES256"], alg="ES256")) == UNKNOWN_KEY


def test_a_remembered_public_key_token_leaves_the_garbage_collector_nothing_to_track():
    """As an HS256 token's: its claims untracked once collected, its key kept apart."""
    import gc

    keys = key_set(("k", PRIVATE["ES256"]))
    token = key_token(PRIVATE["ES256"], alg="ES256", kid="k")
    assert reason(keys, token) is None
    gc.collect()
    assert not gc.is_tracked(MEMO.verified[token])
    assert MEMO.verified_by[token] in keys


def test_a_remembered_token_follows_its_key():
    """The memo names the key object: a token seen valid stops with its key's expiry,
    and once its key is gone from the set (a new set after a removal) it is verified
    again against what is there."""
    keys = key_set(("k", PRIVATE["ES256"]), expires={"k": NOW + 10})
    token = key_token(PRIVATE["ES256"], alg="ES256", kid="k")
    assert reason(keys, token) is None
    assert token in MEMO.verified
    assert reason(keys, token, now=NOW + 10) == KEY_EXPIRED
    assert reason(keys, token, user_id="7") == TOKEN_SUBJECT_MISMATCH
    without = key_set(("other", OTHER["ES256"]))
    assert reason(without, token) == UNKNOWN_KEY
    again = key_set(("k", PRIVATE["ES256"]))  # the same key added again: a new object
    assert reason(again, token) is None


# --------------------------------------------------------- algorithm confusion


def test_alg_none_is_refused():
    keys = key_set(("k", PRIVATE["ES256"]))
    unsigned = key_token(header={"alg": "none", "typ": "JWT"})
    assert reason(keys, unsigned) == TOKEN_MALFORMED
    assert reason(keys, unsigned + "A" * 86) == TOKEN_MALFORMED
    made_by_pyjwt = jwt.encode({"sub": "42", "iat": NOW, "exp": NOW + HOUR}, None, algorithm="none")
    assert reason(keys, made_by_pyjwt) == TOKEN_MALFORMED


@pytest.mark.parametrize("alg", ALGS)
def test_hs256_keyed_with_the_public_key_pem_is_refused(alg):
    """The classic confusion: a verifier that lets the header pick HMAC would use the
    public key's PEM, which anyone has, as the HMAC secret."""
    pem = public_pem_of(PRIVATE[alg])
    keys = key_set(("k", PRIVATE[alg]))
    for secret in (pem.encode(), parse_public_key(pem).spki_der):
        forged = key_token(header={"alg": "HS256", "typ": "JWT", "kid": "k"}, hmac_key=secret)
        assert reason(keys, forged) == TOKEN_MALFORMED
    # An HS256 header over a signature of a public-key token's length: still refused.
    honest = key_token(PRIVATE[alg], alg=alg, kid="k")
    relabelled = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'k'})}.{honest.split('.', 1)[1]}"
    assert reason(keys, relabelled) == TOKEN_MALFORMED


def test_es256_with_a_der_signature_is_refused():
    keys = key_set(("k", PRIVATE["ES256"]))
    der = key_token(PRIVATE["ES256"], alg="ES256", kid="k", how="der")
    assert reason(keys, der) == TOKEN_MALFORMED
    assert reason(keys, key_token(PRIVATE["ES256"], alg="ES256", kid="k")) is None


@pytest.mark.parametrize(
    ("header_alg", "key_alg", "signer"),
    [
        ("RS256", "ES256", "RS256"),  # an RSA signature named by an EC key's kid
        ("ES256", "RS256", "ES256"),
        ("EdDSA", "ES256", "EdDSA"),
        ("ES256", "EdDSA", "ES256"),
        ("ES256", "EdDSA", "EdDSA"),  # an Ed25519 signature (64 bytes too) labelled ES256
        ("EdDSA", "ES256", "ES256"),
        ("RS256", "EdDSA", "RS256"),
    ],
)
def test_a_key_of_the_wrong_type_for_the_alg_is_refused(header_alg, key_alg, signer):
    keys = key_set(("k", PRIVATE[key_alg]))
    token = key_token(PRIVATE[signer], alg=header_alg, kid="k")
    assert reason(keys, token) == TOKEN_MALFORMED
    assert reason(keys, key_token(PRIVATE[signer], alg=header_alg)) == TOKEN_MALFORMED


@pytest.mark.parametrize("alg", ["PS256", "ES384", "ES512", "RS512", "HS256", "Ed25519", "es256"])
def test_other_algorithms_are_refused(alg):
    keys = key_set(("k", PRIVATE["RS256"]), ("e", PRIVATE["ES256"]))
    signer = PRIVATE["RS256"] if alg.upper().startswith(("R", "P")) else PRIVATE["ES256"]
    assert reason(keys, key_token(signer, alg=alg, kid="k")) == TOKEN_MALFORMED


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}},
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
        {"b64": False},
        {"typ": "at+jwt"},
        {"kid": 7},
        {"kid": None},
    ],
)
def test_a_token_never_brings_or_points_at_its_own_key(extra):
    keys = key_set(("k", PRIVATE["ES256"]))
    header = {"alg": "ES256", "typ": "JWT", "kid": "k", **extra}
    assert reason(keys, key_token(PRIVATE["ES256"], header=header)) == TOKEN_MALFORMED


# -------------------------------------------------------------- the signature


@pytest.mark.parametrize("alg", ALGS)
def test_any_change_to_a_signed_part_is_no_match(alg):
    keys = key_set(("k", PRIVATE[alg]))
    token = key_token(PRIVATE[alg], alg=alg, kid="k")
    head, body, signature = token.split(".")
    other_body = part({"sub": "43", "iat": NOW, "exp": NOW + HOUR})
    assert reason(keys, f"{head}.{other_body}.{signature}") == NO_MATCH
    assert reason(keys, key_token(OTHER[alg], alg=alg, kid="k")) == NO_MATCH
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert reason(keys, f"{head}.{body}.{flipped}") == NO_MATCH
    assert reason(keys, f"{head}.{body}.{signature[:-4]}") == TOKEN_MALFORMED  # short
    assert reason(keys, f"{head}.{body}.{signature}AAAA") == TOKEN_MALFORMED  # long
    assert reason(keys, f"{head}.{body}.{signature}=") == TOKEN_MALFORMED  # padded


def test_a_non_canonical_signature_spelling_is_refused():
    keys = key_set(("k", PRIVATE["ES256"]))
    head, body, signature = key_token(PRIVATE["ES256"], alg="ES256", kid="k").split(".")
    # 64 bytes are 86 characters whose last carries 4 unused bits: set one.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    changed = signature[:-1] + last[last.index(signature[-1]) + 1]
    assert reason(keys, f"{head}.{body}.{changed}") == TOKEN_MALFORMED


def test_an_rsa_signature_is_the_modulus_size():
    big = __import__("cryptography.hazmat.primitives.asymmetric.rsa", fromlist=["x"])
    private = big.generate_private_key(65537, 3072)
    keys = key_set(("k", private))
    token = key_token(private, alg="RS256", kid="k")
    assert len(token.rsplit(".", 1)[1]) == 512
    assert reason(keys, token) is None
    assert keys.keys[0].signature_length == 384


# ------------------------------------------------------------------- claims


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"sub": "43", "iat": NOW, "exp": NOW + HOUR}, TOKEN_SUBJECT_MISMATCH),
        ({"sub": "42", "iat": NOW - 2 * HOUR, "exp": NOW - HOUR}, TOKEN_EXPIRED),
        ({"sub": "42", "iat": NOW + 2 * HOUR, "exp": NOW + 3 * HOUR}, TOKEN_EXPIRED),
        ({"sub": "42", "iat": NOW, "exp": NOW + 2 * DAY}, TOKEN_TOO_LONG_LIVED),
        ({"sub": "42", "iat": NOW, "exp": NOW + HOUR, "aud": "x"}, TOKEN_MALFORMED),
        ({"sub": 42, "iat": NOW, "exp": NOW + HOUR}, TOKEN_MALFORMED),
        ({"sub": "42", "exp": NOW + HOUR}, TOKEN_MALFORMED),
        ({"sub": "42", "iat": NOW, "exp": NOW + HOUR, "nbf": NOW + HOUR}, TOKEN_EXPIRED),
        ('{"sub":"42","iat":NaN,"exp":1}', TOKEN_MALFORMED),
        ({"sub": "42", "iat": NOW, "exp": NOW + HOUR, "iss": "me", "jti": "j"}, None),
    ],
)
@pytest.mark.parametrize("alg", ALGS)
def test_the_claims_rules_are_the_hs256_forms(alg, claims, expected):
    keys = key_set(("k", PRIVATE[alg]))
    found, key = check(keys, key_token(PRIVATE[alg], alg=alg, kid="k", claims=claims))
    assert found == expected
    assert key is keys.keys[0]  # the signature matched: the key is named


# -------------------------------------------------------------- robustness


def test_shapes_that_are_not_a_public_key_token():
    keys = key_set(("k", PRIVATE["ES256"]))
    good = key_token(PRIVATE["ES256"], alg="ES256", kid="k")
    for text in ("", "a.b.c", "a.b." + "A" * 43, good + ".x", good.replace(".", "..", 1), "é.é.é"):
        assert reason(keys, text) == TOKEN_MALFORMED
    assert reason(keys, good, max_length=len(good) - 1) == TOKEN_MALFORMED
    assert reason(keys, good, max_length=len(good)) is None
    assert reason(KeySet(()), good) == UNKNOWN_KEY
    header = b64(b'{"alg":"ES256","typ":"JWT","kid":"k","kid":"k"}')  # as json.loads reads it
    assert reason(keys, header + "." + good.split(".", 1)[1]) == NO_MATCH


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400) | st.from_regex(r"[A-Za-z0-9_.-]{0,600}", fullmatch=True))
def test_it_never_raises(text):
    keys = key_set(("k", PRIVATE["ES256"]), ("r", PRIVATE["RS256"]))
    found, _ = verify_key_token(keys, "42", text, now=NOW, leeway=60, max_age=DAY)
    assert found in keytokens.REASONS


def test_headers_are_remembered_boundedly():
    keys = key_set(("k", PRIVATE["ES256"]))
    for n in range(300):
        check(keys, key_token(PRIVATE["ES256"], header={"alg": "ES256", "kid": f"k{n}"}))
    assert 0 < len(MEMO.key_headers) <= 256
