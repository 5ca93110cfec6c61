"""The expiring form: plain-Python HS256 token verification (``trusted_identity.tokens``).

Tokens are built by hand here (base64url, JSON, HMAC), so that every header and claim
an attacker could send can be sent, correctly signed or not; the asymmetric ones are
made with PyJWT and ``cryptography``'s real keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import string

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from trusted_identity import jwtparts, tokens
from trusted_identity.signing import HmacKey
from trusted_identity.tokens import (
    NO_MATCH,
    TOKEN_EXPIRED,
    TOKEN_MALFORMED,
    TOKEN_SUBJECT_MISMATCH,
    TOKEN_TOO_LONG_LIVED,
    make_token,
    verify_token,
)

SECRET = "tis_ios_" + "Q7x" * 16
OTHER = "tis_ios_" + "Zk9" * 16
KEY, OTHER_KEY = HmacKey(SECRET), HmacKey(OTHER)
NOW = 1_800_000_000
HOUR, DAY = 3600, 86400
HEADER = {"alg": "HS256", "typ": "JWT"}


#: The memo the checks below share, as the runtime's is shared by session starts.
MEMO = tokens.TokenMemo()


@pytest.fixture(autouse=True)
def _forget():
    MEMO.clear()
    yield
    MEMO.clear()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return b64(text.encode("utf-8", "surrogatepass"))


def token(claims=None, header=None, secret: str | bytes = SECRET, digest=hashlib.sha256) -> str:
    """A token with any header and claims (dicts, or raw JSON text), HMAC-signed with ``secret``."""
    claims = {"sub": "42", "iat": NOW, "exp": NOW + HOUR} if claims is None else claims
    signing_input = f"{part(HEADER if header is None else header)}.{part(claims)}"
    key = secret.encode() if isinstance(secret, str) else secret
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), digest).digest())}"


def check(signed, user_id="42", keys=(KEY,), now=NOW, leeway=60, max_age=DAY, **kw):
    kw.setdefault("memo", MEMO)
    return verify_token(list(keys), user_id, signed, now=now, leeway=leeway, max_age=max_age, **kw)


# ---------------------------------------------------------------- valid tokens


def test_a_token_made_here_verifies_and_is_what_pyjwt_makes():
    made = make_token(KEY, "42", NOW, NOW + HOUR)
    assert check(made) is None
    header = jwt.get_unverified_header(made)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        made, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {"sub": "42", "iat": NOW, "exp": NOW + HOUR}
    assert made == token({"sub": "42", "iat": NOW, "exp": NOW + HOUR})


def test_every_still_valid_key_is_tried():
    assert check(token(secret=OTHER), keys=(KEY, OTHER_KEY)) is None
    assert check(token(secret=OTHER), keys=(KEY,)) == NO_MATCH
    assert check(token(), keys=()) == NO_MATCH


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256"},
        {"typ": "JWT", "alg": "HS256"},
        {"alg": "HS256", "typ": "jwt"},
        {"alg": "HS256", "kid": "2024-01"},
    ],
)
def test_header_variants_that_signers_send_are_accepted(header):
    assert check(token(header=header)) is None


def test_extra_claims_and_float_dates_are_accepted():
    claims = {"sub": "42", "iat": NOW + 0.5, "exp": NOW + 600.25, "iss": "me", "jti": "x", "n": [1]}
    assert check(token(claims)) is None
    assert check(token({"sub": "42", "iat": NOW, "exp": NOW + HOUR, "nbf": NOW - 5})) is None


@pytest.mark.parametrize("user_id", ["42", " 42", "USER-1", "Zoë", "用户-🚀", "a" * 1024])
def test_any_user_id_round_trips(user_id):
    assert check(make_token(KEY, user_id, NOW, NOW + HOUR), user_id) is None


#: What compare_digest gets for a token's signature: the whole of it, as base64 spells
#: 32 bytes (43 characters, its padding and newline), against each key's spelt so.
WHOLE_SIGNATURE = (45, 45)


def test_every_key_is_compared_in_constant_time_without_stopping_at_a_match(compare_digest_calls):
    calls = compare_digest_calls
    keys = (KEY, OTHER_KEY, HmacKey("tis_ios_third" + "x" * 40))
    assert check(token(secret=SECRET + "x"), keys=keys) == NO_MATCH
    assert calls == [WHOLE_SIGNATURE] * 3
    calls.clear()
    assert check(token(), keys=keys) is None  # the first key matches: all three compared
    assert calls == [WHOLE_SIGNATURE] * 3
    calls.clear()
    assert check("a.b." + "A" * 43) == TOKEN_MALFORMED  # no header: nothing to compare
    assert calls == []


# ------------------------------------------------------ the algorithm is pinned


@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "hs256", "HS256 ", " HS256", "HS256\x00", "", None, ["HS256"]]
)
def test_any_other_alg_is_malformed_even_correctly_signed(alg):
    assert check(token(header={"alg": alg, "typ": "JWT"})) == TOKEN_MALFORMED


def test_alg_none_with_an_empty_signature_is_malformed():
    claims = {"sub": "42", "iat": NOW, "exp": NOW + HOUR}
    unsigned = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    assert check(unsigned) == TOKEN_MALFORMED
    assert check(unsigned + "AAAA") == TOKEN_MALFORMED


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(("alg", "digest"), [("HS384", hashlib.sha384), ("HS512", hashlib.sha512)])
def test_other_hmac_algorithms_are_malformed(alg, digest):
    other = token(header={"alg": alg, "typ": "JWT"}, digest=digest)
    assert (
        jwt.decode(
            other, SECRET, algorithms=[alg], options={"verify_exp": False, "verify_iat": False}
        )["sub"]
        == "42"
    )
    assert check(other) == TOKEN_MALFORMED
    # An HS256 header over a longer MAC, or a truncated one: the shape is wrong.
    assert check(token(digest=digest)) == TOKEN_MALFORMED


def _asymmetric_keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return {"RS256": rsa_key, "PS256": rsa_key, "ES256": ec_key}


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_asymmetric_algorithms_are_malformed(alg):
    private = _asymmetric_keys()[alg]
    signed = jwt.encode({"sub": "42", "iat": NOW, "exp": NOW + HOUR}, private, algorithm=alg)
    assert check(signed) == TOKEN_MALFORMED


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_key_confusion_is_refused(alg):
    """Both directions of the classic confusion: an asymmetric header over an HMAC made
    with our secret (a verifier that let the header pick the algorithm would try the
    secret as a public key), and an HS256 token whose HMAC key is a public key in PEM
    (what a verifier that holds a public key would be tricked into using)."""
    assert check(token(header={"alg": alg, "typ": "JWT"})) == TOKEN_MALFORMED
    public_pem = (
        _asymmetric_keys()[alg]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert check(token(secret=public_pem)) == NO_MATCH
    # The same PEM as one of the platform's keys is refused by PyJWT's HMAC key check,
    # which the verification asks of the key that matched (our secrets are never PEM).
    pem_key = HmacKey(public_pem)
    assert check(token(secret=public_pem), keys=(pem_key,)) == TOKEN_MALFORMED


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"], "exp": NOW},
        {"crit": ["b64"], "b64": False},
        {"b64": True},
        {"jku": "https://evil.example/jwks.json"},
        {"jwk": {"kty": "oct", "k": b64(b"attacker")}},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"cty": "JWT"},
        {"typ": "at+jwt"},
        {"typ": 1},
        {"kid": 7},
        {"kid": None},
    ],
)
def test_header_members_that_pick_keys_or_change_processing_are_malformed(extra):
    assert check(token(header={**HEADER, **extra})) == TOKEN_MALFORMED


def test_a_header_is_judged_by_itself_after_another_was_accepted():
    """The header accepted last is taken without reading it again: only a token whose
    header segment is exactly that one (up to its dot) is."""
    assert check(token()) is None
    accepted = token().split(".")[0]
    refused = ({**HEADER, "crit": ["exp"], "exp": NOW}, {"alg": "none"}, {**HEADER, "jku": "x"})
    for header in refused:
        assert check(token(header=header)) == TOKEN_MALFORMED
        assert check(token()) is None
    body, mac = token().split(".")[1:]
    for segment in (accepted + "A", accepted[:-1], accepted + "." + accepted):
        assert check(f"{segment}.{body}.{mac}") == TOKEN_MALFORMED
    assert check(token(header={"typ": "JWT", "alg": "HS256"})) is None  # another spelling
    assert check(token({"sub": "42", "iat": NOW, "exp": NOW + HOUR, "jti": "x"})) is None


def test_a_flood_of_acceptable_headers_keeps_the_header_memo_bounded():
    """A client holding an API key can send a new acceptable header on every start (any
    ``kid``), forged or not: each is read once, the memo of headers stays bounded, and
    the header remembered last is one string. Genuine tokens verify throughout."""
    for n in range(3 * tokens._HEADERS_MAX):
        forged = token(header={**HEADER, "kid": f"k{n}"}, secret="forged")
        assert check(forged) == NO_MATCH
        assert len(MEMO.headers) <= tokens._HEADERS_MAX
        if n % 97 == 0:  # a token never seen, so its header is judged again
            assert check(token({"sub": "42", "iat": NOW, "exp": NOW + HOUR - n})) is None
    assert MEMO.last_header.endswith(".") and len(MEMO.last_header) < 100


@pytest.mark.parametrize(
    "kid", ["../../../../dev/null", "' OR '1'='1", "/etc/passwd", "", "x" * 200, "tis_ios_other"]
)
def test_kid_never_picks_a_key(kid):
    header = {**HEADER, "kid": kid}
    assert check(token(header=header)) is None  # ignored: the platform's keys decide
    assert check(token(header=header, secret="")) == NO_MATCH
    assert check(token(header=header, secret=b"\x00" * 32)) == NO_MATCH
    assert check(token(header=header, secret=kid or "k")) == NO_MATCH


# ---------------------------------------------------------------------- claims


@pytest.mark.parametrize(
    ("claims", "user_id"),
    [
        ({"sub": "42"}, " 42"),
        ({"sub": " 42"}, "42"),
        ({"sub": "USER-1"}, "user-1"),
        ({"sub": "e\u0301"}, "\u00e9"),  # NFD vs NFC: different user ids
        ({"sub": "42"}, "420"),
    ],
)
def test_sub_must_equal_the_user_id_exactly(claims, user_id):
    full = {**claims, "iat": NOW, "exp": NOW + HOUR}
    assert check(token(full), user_id) == TOKEN_SUBJECT_MISMATCH


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": NOW, "exp": NOW + HOUR},
        {"sub": 42, "iat": NOW, "exp": NOW + HOUR},
        {"sub": None, "iat": NOW, "exp": NOW + HOUR},
        {"sub": "42", "exp": NOW + HOUR},
        {"sub": "42", "iat": NOW},
        {"sub": "42", "iat": str(NOW), "exp": NOW + HOUR},
        {"sub": "42", "iat": NOW, "exp": str(NOW + HOUR)},
        {"sub": "42", "iat": True, "exp": NOW + HOUR},
        {"sub": "42", "iat": NOW, "exp": None},
        {"sub": "42", "iat": NOW, "exp": [NOW + HOUR]},
        {"sub": "42", "iat": NOW, "exp": NOW},  # no lifetime
        {"sub": "42", "iat": NOW, "exp": NOW - 1},
        {"sub": "42", "iat": NOW, "exp": NOW + HOUR, "nbf": "now"},
        {"sub": "42", "iat": NOW, "exp": NOW + HOUR, "nbf": None},
        {"sub": "42", "iat": NOW, "exp": NOW + HOUR, "jti": 5},
        {"sub": "42", "iat": NOW, "exp": NOW + HOUR, "aud": "trusted-identity"},
        {"sub": "42", "iat": NOW, "exp": NOW + HOUR, "aud": []},
        '{"sub":"42","iat":1800000000,"exp":NaN}',
        '{"sub":"42","iat":1800000000,"exp":Infinity}',
        '{"sub":"42","iat":1800000000,"exp":1e999}',
        '{"sub":"42","iat":-1e999,"exp":1800003600}',
        '["sub","42"]',
        '"42"',
        "",
        "{",
        '{"sub":"42","iat":1800000000,"exp":1800003600',
        '\ufeff{"sub":"42","iat":1800000000,"exp":1800003600}',
        "[" * 100_000,
        '{"sub":"42","iat":1800000000,"exp":1' + "0" * 5000 + "}",
    ],
)
def test_claims_of_the_wrong_shape_are_malformed_even_correctly_signed(claims):
    assert check(token(claims), max_length=10**6) == TOKEN_MALFORMED


def test_claims_that_are_not_utf8_are_malformed():
    raw = b'{"sub":"\xff","iat":1800000000,"exp":1800003600}'
    signing_input = f"{part(HEADER)}.{b64(raw)}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    assert check(f"{signing_input}.{b64(mac)}") == TOKEN_MALFORMED


def test_duplicate_claims_take_the_last_value_as_every_json_parser_here_does():
    raw = '{"sub":"victim","sub":"42","iat":1800000000,"exp":1800003600}'
    assert check(token(raw)) is None
    assert check(token(raw), "victim") == TOKEN_SUBJECT_MISMATCH


def test_lifetime_is_bounded_by_the_maximum_age():
    assert check(token({"sub": "42", "iat": NOW, "exp": NOW + DAY})) is None
    assert check(token({"sub": "42", "iat": NOW, "exp": NOW + DAY + 1})) == TOKEN_TOO_LONG_LIVED
    assert check(token({"sub": "42", "iat": NOW, "exp": NOW + HOUR}), max_age=HOUR - 1) == (
        TOKEN_TOO_LONG_LIVED
    )
    huge = token({"sub": "42", "iat": NOW, "exp": 10**30})
    assert check(huge) == TOKEN_TOO_LONG_LIVED


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"iat": NOW - HOUR, "exp": NOW - 61}, TOKEN_EXPIRED),
        ({"iat": NOW - HOUR, "exp": NOW - 60}, TOKEN_EXPIRED),  # exp <= now - leeway
        ({"iat": NOW - HOUR, "exp": NOW - 59}, None),  # inside the leeway
        ({"iat": NOW - HOUR, "exp": NOW + 1}, None),
        ({"iat": NOW + 60, "exp": NOW + HOUR}, None),  # a signer's clock 60 s ahead
        ({"iat": NOW + 61, "exp": NOW + HOUR}, TOKEN_EXPIRED),  # not yet valid
        ({"iat": NOW, "exp": NOW + HOUR, "nbf": NOW + 61}, TOKEN_EXPIRED),
        ({"iat": NOW, "exp": NOW + HOUR, "nbf": NOW + 60}, None),
    ],
)
def test_exp_iat_and_nbf_against_the_clock_with_leeway(claims, expected):
    assert check(token({"sub": "42", **claims})) == expected


def test_leeway_zero_is_strict():
    assert check(token({"sub": "42", "iat": NOW - 10, "exp": NOW}), leeway=0) == TOKEN_EXPIRED
    assert check(token({"sub": "42", "iat": NOW + 1, "exp": NOW + 10}), leeway=0) == TOKEN_EXPIRED
    assert check(token({"sub": "42", "iat": NOW, "exp": NOW + 1}), leeway=0) is None


def test_nothing_of_the_claims_is_read_before_the_signature_matched():
    """A forged token says no_match, whatever its claims: the reasons of section 9 are
    only ever given for tokens signed with a platform secret."""
    for claims in (
        {"sub": "other", "iat": NOW, "exp": NOW + HOUR},
        {"sub": "42", "iat": NOW - DAY, "exp": NOW - HOUR},
        {"sub": "42", "iat": NOW, "exp": NOW + 30 * DAY},
        "not json at all",
    ):
        assert check(token(claims, secret="forged")) == NO_MATCH


# ---------------------------------------------------------------------- shape


@pytest.mark.parametrize("header_seen", [False, True], ids=["new-header", "header-seen"])
def test_shape_is_checked_before_anything_is_decoded(header_seen):
    """With a header never seen, and with the one accepted last (whose segment is not
    read again: only the rest's shape is checked)."""
    good = token()
    if header_seen:
        assert check(good) is None
        MEMO.verified.clear()
    head, body, mac = good.split(".")
    for bad in (
        f"{head}.{body}.{mac}=",  # padding
        f"{head}=.{body}.{mac}",
        f"{head}.{body}.{mac[:-1]}",  # 42 characters
        f"{head}.{body}.{mac}A",  # 44
        f"{head}.{body}.{mac}.",
        f".{body}.{mac}",
        f"{head}..{mac}",
        f"{head}.{body}.{body}.{mac}",
        f"{head}.{body}.",
        f" {good}",
        f"{good}\n",
        f"{head}.{body}.{mac[:-1]}+",  # standard base64, not base64url
        f"{head}.{body}.{mac[:-1]}/",
        f"{head}.{body}\u00e9.{mac}",
        good.replace(".", "\u2024"),
        "..",
        "a.b.c",
    ):
        assert check(bad) == TOKEN_MALFORMED, bad


BASE64URL = frozenset(string.ascii_letters + string.digits + "-_")


@pytest.mark.parametrize("segment", ["header", "claims", "signature"])
@pytest.mark.parametrize("header_seen", [False, True], ids=["new-header", "header-seen"])
def test_every_character_outside_base64url_is_malformed_even_correctly_signed(header_seen, segment):
    """The shape admits base64url's 64 characters and the two dots, nothing else: every
    other code point below 256 (and two beyond), put inside a segment of a token whose
    signature is computed over it, is token_malformed, and the diagnosis's comparison
    finds no key for it."""
    good = token()
    if header_seen:
        assert check(good) is None
        MEMO.verified.clear()
    head, body, mac = good.split(".")
    outside = [chr(code) for code in [*range(256), 0x2024, 0xFF0B]]
    outside = [char for char in outside if char not in BASE64URL and char != "."]
    assert len(outside) == 256 - 65 + 2
    for char in outside:
        if segment == "signature":
            bad = f"{head}.{body}.{mac[:5]}{char}{mac[6:]}"
        else:
            if segment == "header":
                signing_input = f"{head[:4]}{char}{head[4:]}.{body}"
            else:
                signing_input = f"{head}.{body[:4]}{char}{body[4:]}"
            digest = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
            bad = f"{signing_input}.{b64(digest)}"
        assert check(bad) == TOKEN_MALFORMED, repr(char)
        assert tokens.match_index([KEY], bad) == -1, repr(char)


@pytest.mark.parametrize("separator", ["first", "second"])
@pytest.mark.parametrize("header_seen", [False, True], ids=["new-header", "header-seen"])
def test_a_character_outside_base64url_in_place_of_a_dot_is_malformed_even_signed(
    header_seen, separator
):
    """A token has two dots. One character the shape check reads as a separator (a
    ``+``, a space...) standing for either of them, in a text whose signature is
    computed over what precedes its last separator, leaves a text of one dot: malformed,
    whoever signed it, and no key matches it in the diagnosis."""
    good = token()
    if header_seen:
        assert check(good) is None
        MEMO.verified.clear()
    head, body, _ = good.split(".")
    for char in "+/ !~=\x7f\u00e9":
        if separator == "first":
            signing_input = f"{head}{char}{body}"
            digest = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
            bad = f"{signing_input}.{b64(digest)}"
        else:
            signing_input = f"{head}.{body}"
            digest = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
            bad = f"{signing_input}{char}{b64(digest)}"
        assert bad.count(".") == 1
        assert check(bad) == TOKEN_MALFORMED, repr(char)
        assert tokens.match_index([KEY], bad) == -1, repr(char)


@pytest.mark.parametrize("header_seen", [False, True], ids=["new-header", "header-seen"])
def test_a_non_canonical_signature_encoding_is_malformed(header_seen):
    """43 base64url characters carry 258 bits for 256: the last character's two unused
    bits must be zero, or one signature would have several spellings."""
    good = token()
    if header_seen:
        assert check(good) is None
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(good[-1])
    respelt = good[:-1] + alphabet[last | 1 if last % 2 == 0 else last - 1]
    assert base64.urlsafe_b64decode(respelt.split(".")[2] + "=") == base64.urlsafe_b64decode(
        good.split(".")[2] + "="
    )
    assert check(respelt) == TOKEN_MALFORMED


def test_size_is_bounded_before_parsing():
    long_id = "u" * 2900
    made = make_token(KEY, long_id, NOW, NOW + HOUR)
    assert 3900 < len(made) <= 4096
    assert check(made, long_id) is None
    assert check(made, long_id, max_length=len(made) - 1) == TOKEN_MALFORMED
    assert check("a" * 10**6 + ".b." + "A" * 43) == TOKEN_MALFORMED


def test_looks_like_token_is_three_parts():
    assert tokens.looks_like_token(token())
    assert tokens.looks_like_token("a.b.c")
    assert not tokens.looks_like_token("0" * 64)
    assert not tokens.looks_like_token("a.b")
    assert not tokens.looks_like_token("a.b.c.d")


# ------------------------------------------- PyJWT: the keys, and the verdicts agree


@pytest.mark.parametrize(
    "secret",
    [
        b"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC user@host",
        b'{"kty": "oct", "k": "c2VjcmV0"}',
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ],
)
def test_a_key_pyjwt_refuses_as_an_hmac_secret_verifies_nothing(secret, caplog):
    with caplog.at_level(logging.WARNING, "trusted_identity"):
        assert check(token(secret=secret), keys=(HmacKey(secret),)) == TOKEN_MALFORMED
    assert "PyJWT refuses as an HMAC secret" in caplog.text
    assert secret.decode() not in caplog.text


def test_what_is_valid_here_pyjwt_decodes_to_the_same_claims():
    claims = {"sub": "Zoë 🚀", "iat": NOW - 10, "exp": NOW + 600, "nbf": NOW - 5, "jti": "j"}
    for made in (
        token(claims),
        token(claims, header={"alg": "HS256"}),
        jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"}),
    ):
        assert check(made, "Zoë 🚀") is None
        decoded = jwt.decode(
            made,
            SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        assert decoded == claims


def test_a_valid_verdict_is_remembered_per_token_and_key(monkeypatch):
    digests = []
    real = HmacKey.digest

    def counting(self, message):
        digests.append(message)
        return real(self, message)

    monkeypatch.setattr(HmacKey, "digest", counting)
    made = token()
    assert check(made) is None
    assert check(made) is None
    assert len(digests) == 1  # once: then only the clock, subject and lifetime
    # Remembered verdicts still answer to the time, the subject and the maximum age.
    assert check(made, now=NOW + HOUR + 60) == TOKEN_EXPIRED
    assert check(made, "43") == TOKEN_SUBJECT_MISMATCH
    assert check(made, max_age=60) == TOKEN_TOO_LONG_LIVED
    # ...and to the keys: the key that verified it is gone (rotated out): not valid.
    assert check(made, keys=(OTHER_KEY,)) == NO_MATCH
    assert check(made, keys=(HmacKey(SECRET),)) is None  # a new key object: checked again
    assert len(digests) == 3
    # An invalid verdict is never remembered.
    digests.clear()
    expired = token({"sub": "42", "iat": NOW - DAY, "exp": NOW - HOUR})
    assert check(expired) == TOKEN_EXPIRED
    assert check(expired, now=NOW - 2 * HOUR) is None
    assert len(digests) == 2


def test_nothing_escapes(caplog):
    class Broken:
        def digest(self, message):
            raise RuntimeError(SECRET)

    with caplog.at_level(logging.ERROR, "trusted_identity"):
        assert check(token(), keys=(Broken(),)) == TOKEN_MALFORMED
        assert verify_token([KEY], "42", None, now=NOW, leeway=60, max_age=DAY) == TOKEN_MALFORMED
    assert "token verification failed (RuntimeError)" in caplog.text
    assert SECRET not in caplog.text


def test_the_remembered_verdicts_are_bounded(monkeypatch):
    monkeypatch.setattr(tokens, "_VERIFIED_MAX", 5)
    for n in range(12):
        assert check(make_token(KEY, "42", NOW + n, NOW + HOUR)) is None
        assert len(MEMO.verified) <= 5
    long_token = make_token(KEY, "u" * 900, NOW, NOW + HOUR)
    MEMO.clear()
    assert check(long_token, "u" * 900) is None
    assert MEMO.verified == {}  # over 1,024 characters: verified each time


def test_a_remembered_token_leaves_the_garbage_collector_nothing_to_track():
    """The memo keeps a token's claims (strings and numbers, which the collector stops
    tracking) apart from its key: a (key, claims) pair stayed tracked, and 4,096 of them
    alive in every worker made each collection longer and the full ones more frequent."""
    import gc

    remembered = [make_token(KEY, "42", NOW + n, NOW + HOUR) for n in range(20)]
    assert all(check(t) is None for t in remembered)
    gc.collect()
    assert [gc.is_tracked(MEMO.verified[t]) for t in remembered] == [False] * 20
    assert all(MEMO.verified_by[t] is KEY for t in remembered)
    assert check(remembered[0]) is None and check(remembered[0], keys=(OTHER_KEY,)) == NO_MATCH


@settings(max_examples=300, deadline=None)
@given(
    sub=st.text(max_size=30),
    iat=st.integers(0, 10**17),
    exp=st.integers(0, 10**17),
    spelling=st.sampled_from(["compact", "spaced", "escaped", "reordered", "float"]),
)
def test_claims_read_without_the_decoder_are_what_json_reads(sub, iat, exp, spelling):
    """The claims as signers write them skip the JSON decoder; any text gives what
    ``json.loads`` gives, however it is spelt."""
    claims = {"sub": sub, "iat": iat, "exp": exp}
    text = {
        "compact": json.dumps(claims, separators=(",", ":"), ensure_ascii=False),
        "spaced": json.dumps(claims),
        "escaped": json.dumps(claims, separators=(",", ":")),
        "reordered": json.dumps(dict(reversed(claims.items())), separators=(",", ":")),
        "float": json.dumps({**claims, "exp": exp + 0.5}, separators=(",", ":")),
    }[spelling]
    parsed = json.loads(text)
    expected = None
    if parsed["exp"] > parsed["iat"]:
        expected = (parsed["sub"], parsed["iat"], parsed["exp"], None)
    segment = base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).rstrip(b"=")
    got = jwtparts.parse_claims(segment)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in sub) and spelling in ("compact", "float"):
        assert got is None  # a lone surrogate is not UTF-8: no claims at all
    else:
        assert got == expected
        assert got is None or all(type(a) is type(b) for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize(
    "subject",
    [b"\xff", b"caf\xc3", b"\xed\xa0\x80", b"ok\xc0\xaf"],
    ids=["not-utf8", "cut-short", "lone-surrogate", "overlong-slash"],
)
def test_a_subject_that_is_not_utf8_is_no_claims_even_in_the_signers_layout(subject):
    """The signers' layout is matched on the bytes; a subject whose bytes are not UTF-8
    gives no claims, as decoding the whole text first did."""
    text = b'{"sub":"' + subject + b'","iat":1700000000,"exp":1700003600}'
    assert jwtparts.parse_claims(base64.urlsafe_b64encode(text).rstrip(b"=")) is None
    good = text.replace(subject, "café ✓".encode())
    assert jwtparts.parse_claims(base64.urlsafe_b64encode(good).rstrip(b"=")) == (
        "café ✓",
        1700000000,
        1700003600,
        None,
    )


def test_match_index_compares_the_signature_under_every_key(compare_digest_calls):
    calls = compare_digest_calls
    keys = (OTHER_KEY, KEY, HmacKey(SECRET))
    assert tokens.match_index(keys, token()) == 1
    assert calls == [(32, 32)] * 3  # decoded once for the diagnosis's many keys
    assert tokens.match_index(keys, token(secret="nobody's")) == -1
    assert tokens.match_index(keys, token(claims={"sub": 1})) == 1  # claims never read
    calls.clear()
    for garbage in ("a.b.c", "a.b." + "A" * 42 + "B", "x" * 5000):
        assert tokens.match_index(keys, garbage) == -1
    assert calls == []


def test_verify_token_match_names_the_key_that_matched():
    keys = (OTHER_KEY, KEY)
    options = {"now": NOW, "leeway": 60, "max_age": DAY, "memo": MEMO}
    assert tokens.verify_token_match(keys, "42", token(), **options) == (None, KEY)
    assert tokens.verify_token_match(keys, "42", token(), **options) == (None, KEY)  # remembered
    assert tokens.verify_token_match(keys, "7", token(), **options) == (
        tokens.TOKEN_SUBJECT_MISMATCH,
        KEY,
    )
    assert tokens.verify_token_match(keys, "42", token(secret="x" * 40), **options) == (
        NO_MATCH,
        None,
    )
