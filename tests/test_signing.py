"""The signature itself: plain-Python HMAC-SHA256 signing, verification and secrets.

The vectors were computed with Node's ``crypto.createHmac("sha256", secret)``; the
contract says our signature is byte-for-byte what Node gives.
"""

import hmac
import json
import math
import string
import unicodedata
from pathlib import Path

import pytest

from trusted_identity import signing
from trusted_identity.signing import (
    SECRET_ALPHABET,
    SIGNATURE_LENGTH,
    decode_signature,
    generate_secret,
    sign,
    verify,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parent / "data" / "node-hmac-sha256.json").read_text("utf-8")
)["vectors"]
VECTOR_IDS = [f"vector-{index}" for index in range(len(VECTORS))]

# A vector of the file, used by the single-purpose tests below.
SECRET = "tis_android_k3y"
USER_42 = "42"


def _vector(user_id: str, secret: str) -> dict:
    return next(v for v in VECTORS if v["userId"] == user_id and v["secret"] == secret)


def test_fixture_and_file_hold_the_same_vectors(node_vectors):
    """The parametrized tests below cover every vector the fixture hands out."""
    assert node_vectors == VECTORS
    assert len(VECTORS) >= 10


@pytest.mark.parametrize("index", range(len(VECTORS)), ids=VECTOR_IDS)
def test_sign_matches_node(node_vectors, index):
    vector = node_vectors[index]
    assert sign(vector["secret"], vector["userId"]) == vector["signed"]


@pytest.mark.parametrize("index", range(len(VECTORS)), ids=VECTOR_IDS)
def test_verify_accepts_node_signatures_in_either_case(node_vectors, index):
    vector = node_vectors[index]
    secrets = [vector["secret"]]
    assert verify(secrets, vector["userId"], vector["signed"])
    assert verify(secrets, vector["userId"], vector["signed"].upper())
    # Secrets may also be handed over as their UTF-8 bytes.
    assert verify([vector["secret"].encode("utf-8")], vector["userId"], vector["signed"])


def test_sign_is_lowercase_hex_of_64_digits():
    signature = sign("some secret", "user-1")
    assert len(signature) == SIGNATURE_LENGTH == 64
    assert set(signature) <= set("0123456789abcdef")
    assert sign(b"some secret", "user-1") == signature


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: "", id="empty"),
        pytest.param(lambda s: s[:-1], id="one-short"),
        pytest.param(lambda s: s + "0", id="one-long"),
        pytest.param(lambda s: s * 2, id="doubled"),
        pytest.param(lambda s: s[:32], id="half"),
    ],
)
def test_verify_rejects_wrong_length(mangle):
    signed = _vector(USER_42, SECRET)["signed"]
    bad = mangle(signed)
    assert len(bad) != SIGNATURE_LENGTH
    assert decode_signature(bad) is None
    assert verify([SECRET], USER_42, bad) is False


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-1] + "g", id="letter-g"),
        pytest.param(lambda s: "0x" + s[2:], id="0x-prefix"),
        pytest.param(lambda s: s[:-2] + " \t", id="trailing-whitespace"),
        pytest.param(lambda s: s[:30] + "  " + s[32:], id="inner-whitespace"),
        pytest.param(lambda s: s[:-1] + "\u0663", id="arabic-indic-digit"),
        pytest.param(lambda s: s[:-1] + "\uff41", id="fullwidth-a"),
        pytest.param(lambda s: s.encode("ascii"), id="bytes"),
        pytest.param(lambda s: None, id="none"),
    ],
)
def test_verify_rejects_non_hex(mangle):
    signed = _vector(USER_42, SECRET)["signed"]
    bad = mangle(signed)
    assert bad != signed
    assert verify([SECRET], USER_42, bad) is False


def test_verify_rejects_every_one_character_change_of_the_signature():
    signed = _vector(USER_42, SECRET)["signed"]
    assert verify([SECRET], USER_42, signed)
    for position, char in enumerate(signed):
        replacement = "0" if char != "0" else "1"
        changed = signed[:position] + replacement + signed[position + 1 :]
        assert not verify([SECRET], USER_42, changed), position


@pytest.mark.parametrize(
    ("signed_for", "presented_as"),
    [
        pytest.param("42", " 42", id="leading-space"),
        pytest.param("42", "42 ", id="trailing-space"),
        pytest.param(" 42", "42", id="space-removed"),
        pytest.param("42", "43", id="one-digit"),
        pytest.param("USER-1", "user-1", id="case-folded"),
        pytest.param("user-1", "User-1", id="capitalised"),
    ],
)
def test_verify_takes_the_user_id_exactly_as_given(signed_for, presented_as):
    signed = sign(SECRET, signed_for)
    assert verify([SECRET], signed_for, signed)
    assert not verify([SECRET], presented_as, signed)


def test_the_vectors_treat_near_identical_user_ids_as_different_users():
    """The Node vectors themselves: "42", " 42", "42 " all sign differently."""
    signatures = {v["signed"] for v in VECTORS if v["userId"].strip() == "42"}
    assert len(signatures) == 3


def test_no_unicode_normalisation():
    composed = unicodedata.normalize("NFC", "café")
    decomposed = unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    assert not verify([SECRET], decomposed, sign(SECRET, composed))


def test_verify_tries_every_secret():
    signed = sign("the-right-one", "user-1")
    assert verify(["wrong-1", "wrong-2", "the-right-one"], "user-1", signed)
    assert verify(["the-right-one", "wrong-1"], "user-1", signed)
    # Any iterable will do, such as a generator.
    assert verify((s for s in ["wrong-1", "the-right-one"]), "user-1", signed)
    assert not verify(["wrong-1", "wrong-2"], "user-1", signed)


def test_verify_with_no_secrets_is_false():
    signed = sign("anything", "user-1")
    assert verify([], "user-1", signed) is False
    assert verify(iter(()), "user-1", signed) is False


def test_a_secret_differing_by_one_character_does_not_verify():
    signed = sign(SECRET, USER_42)
    assert not verify([SECRET[:-1] + "Y"], USER_42, signed)
    assert not verify([SECRET + " "], USER_42, signed)


# ------------------------------------------------------------------ secrets


def test_generate_secret_prefix_length_and_alphabet():
    secret = generate_secret("tis_ios_")
    assert secret.startswith("tis_ios_")
    body = secret[len("tis_ios_") :]
    assert len(body) == 48
    assert set(body) <= set(SECRET_ALPHABET)
    assert secret.isascii() and secret.isprintable()
    assert len(generate_secret("p_", length=60)) == len("p_") + 60


def test_secret_alphabet_is_printable_ascii_without_separators():
    assert set(SECRET_ALPHABET) <= set(string.ascii_letters + string.digits)
    assert len(set(SECRET_ALPHABET)) == len(SECRET_ALPHABET) == 62


def test_generated_secrets_carry_at_least_256_bits():
    body_length = len(generate_secret("")) - len("")
    bits = body_length * math.log2(len(set(SECRET_ALPHABET)))
    assert bits >= 256


def test_generated_secrets_are_random():
    samples = [generate_secret("tis_web_") for _ in range(300)]
    assert len(set(samples)) == len(samples)
    # 300 x 48 characters: every character of the alphabet shows up (the chance that
    # a uniform choice misses one is about 62 * (61/62) ** 14400, i.e. never).
    seen = set("".join(s[len("tis_web_") :] for s in samples))
    assert seen == set(SECRET_ALPHABET)


# ------------------------------------------------------------- prepared HMAC keys


@pytest.mark.parametrize("length", [0, 1, 31, 32, 63, 64, 65, 128, 300])
def test_prepared_key_matches_hmac_for_every_key_length(length):
    """HmacKey precomputes RFC 2104's padded states; keys past the block are hashed first."""
    key = bytes((n * 7 + 3) % 256 for n in range(length))
    for message in (b"", b"42", "Ünïcödé-用户-🚀".encode(), b"x" * 1000):
        assert signing.HmacKey(key).digest(message) == hmac.digest(key, message, "sha256")


def test_prepared_key_signs_and_verifies_the_node_vectors(node_vectors):
    for vector in node_vectors:
        key = signing.HmacKey(vector["secret"])
        assert signing.sign(key, vector["userId"]) == vector["signed"]
        assert signing.verify([key], vector["userId"], vector["signed"].upper())
        assert not signing.verify([key], vector["userId"] + " ", vector["signed"])
    assert repr(signing.HmacKey("tis_web_secret")) == "<HmacKey>"


def test_match_index_names_the_key_and_compares_every_one(compare_digest_calls):
    calls = compare_digest_calls
    keys = [signing.HmacKey("a" * 20), SECRET, signing.HmacKey(SECRET), b"other"]
    signature = sign(SECRET, USER_42)
    assert signing.match_index(keys, USER_42, signature) == 1  # the first that matched
    assert calls == [(32, 32)] * 4  # no early exit
    calls.clear()
    assert signing.match_index(keys, USER_42, signature.upper()) == 1
    assert signing.match_index(keys, "43", signature) == -1
    assert signing.match_index(keys, USER_42, "zz") == -1  # malformed: the same work
    assert calls == [(32, 32)] * 12
    assert signing.match_index([], USER_42, signature) == -1
