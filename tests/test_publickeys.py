"""Reading public keys (``trusted_identity.publickeys``, CONTRACT section 10): PEM, DER and
JWK in; private, weak, unsupported and malformed keys refused with one line that never
repeats the input; the RFC 7638 thumbprint and the fingerprint."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519

from trusted_identity import publickeys
from trusted_identity.publickeys import PublicKeyError, check_kid, parse_public_key

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _keys():
    return {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
        "RS256": rsa.generate_private_key(65537, 2048),
    }


KEYS = _keys()


def public_pem(private) -> str:
    return private.public_key().public_bytes(PEM, SPKI).decode()


def private_pem(private, fmt=serialization.PrivateFormat.PKCS8, password=None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private.private_bytes(PEM, fmt, encryption).decode()


def refused(value, match: str) -> str:
    with pytest.raises(PublicKeyError) as info:
        parse_public_key(value)
    message = str(info.value)
    assert "\n" not in message and match.lower() in message.lower(), message
    if isinstance(value, str) and len(value) > 60:  # the key's text is never repeated
        for line in value.splitlines():
            if len(line) > 20 and "-----" not in line:
                assert line not in message and line[:20] not in message
    return message


# ------------------------------------------------------------------ accepted


@pytest.mark.parametrize(
    ("alg", "description", "kty"),
    [("ES256", "EC P-256", "EC"), ("EdDSA", "Ed25519", "OKP"), ("RS256", "RSA 2,048 bits", "RSA")],
)
def test_pem_der_and_jwk_of_one_key_are_the_same_key(alg, description, kty):
    private = KEYS[alg]
    from_pem = parse_public_key(public_pem(private))
    assert (from_pem.alg, from_pem.description, from_pem.kty) == (alg, description, kty)
    der = private.public_key().public_bytes(DER, SPKI)
    assert from_pem.spki_der == der
    assert parse_public_key(der) == from_pem  # DER bytes, as a binary file gives them
    assert parse_public_key(public_pem(private).encode()) == from_pem
    jwk = from_pem.jwk()
    assert jwk["kty"] == kty
    for given in (jwk, json.dumps(jwk), {"keys": [jwk]}, {**jwk, "alg": alg, "use": "sig"}):
        assert parse_public_key(given).spki_der == der
    assert parse_public_key({**jwk, "kid": "k-1"}).jwk_kid == "k-1"
    # The thumbprint is RFC 7638's: the same for every spelling of the key.
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert from_pem.thumbprint == expected
    assert parse_public_key(json.dumps({**jwk, "kid": "x", "use": "sig"})).thumbprint == expected
    # The fingerprint: SHA256: and the unpadded base64 of the SPKI DER's SHA-256.
    digest = base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert from_pem.fingerprint == f"SHA256:{digest}"
    assert from_pem.spki_pem == public_pem(private)
    assert publickeys.PublicKey.from_der(der) == from_pem


def test_the_rfc_7638_example_thumbprint():
    """RFC 7638 section 3.1: the example RSA key and its thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
        "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    key = parse_public_key(jwk)
    assert key.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert (key.jwk_kid, key.alg) == ("2011-04-29", "RS256")


def test_an_rsa_pkcs1_public_pem_and_surrounding_whitespace_are_read():
    private = KEYS["RS256"]
    pkcs1 = private.public_key().public_bytes(PEM, serialization.PublicFormat.PKCS1).decode()
    assert pkcs1.startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert parse_public_key("\n  " + pkcs1 + "\n\n").alg == "RS256"
    assert parse_public_key("\ufeff" + public_pem(KEYS["ES256"])).alg == "ES256"


# ------------------------------------------------------------------- refused


PRIVATE_FORMATS = [
    (alg, fmt)
    for alg in ("ES256", "RS256", "EdDSA")
    for fmt in (
        serialization.PrivateFormat.PKCS8,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.PrivateFormat.OpenSSH,
    )
    if (alg, fmt) != ("EdDSA", serialization.PrivateFormat.TraditionalOpenSSL)  # none such
]


@pytest.mark.parametrize(("alg", "fmt"), PRIVATE_FORMATS)
def test_a_private_key_pem_is_refused_and_never_repeated(alg, fmt):
    text = private_pem(KEYS[alg], fmt)
    assert "PRIVATE KEY" in text
    refused(text, "this is a private key")
    refused(text.replace("-----BEGIN", "junk before\n-----BEGIN"), "private key")


def test_an_encrypted_private_key_and_private_der_are_refused():
    refused(private_pem(KEYS["ES256"], password=b"pw"), "private key")
    der = KEYS["ES256"].private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    refused(der, "private key")
    encrypted = KEYS["RS256"].private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    refused(encrypted, "private key")  # needs a password to read: a private key all the same
    refused("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", "private key")


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi"])
def test_a_private_jwk_is_refused(member):
    jwk = parse_public_key(public_pem(KEYS["RS256"])).jwk()
    message = refused({**jwk, member: "AQAB"}, "this is a private key")
    assert "AQAB" not in message
    refused(json.dumps({"keys": [{**jwk, member: "AQAB"}]}), "private key")


def test_a_symmetric_jwk_is_refused():
    refused({"kty": "oct", "k": "c2VjcmV0"}, "shared secret")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "1,024 bits is too weak"),
        (lambda: rsa.generate_private_key(65537, 2040), "2,040 bits is too weak"),
        (lambda: rsa.generate_private_key(3, 2048), "public exponent"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "secp384r1 is not supported"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1 is not supported"),
        (lambda: ed448.Ed448PrivateKey.generate(), "Ed448"),
        (lambda: x25519.X25519PrivateKey.generate(), "not supported"),
    ],
)
def test_weak_and_unsupported_keys_are_refused(make, match):
    private = make()
    refused(public_pem(private), match)
    if not isinstance(private, (ed448.Ed448PrivateKey, x25519.X25519PrivateKey)):
        jwk = json.loads(
            __import__("jwt")
            .algorithms.get_default_algorithms()[
                "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
            ]
            .to_jwk(private.public_key())
        )
        is_ec = isinstance(private, ec.EllipticCurvePrivateKey)
        refused(jwk, "is not supported" if is_ec else match)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "no key given"),
        ("   \n", "no key given"),
        ("hello", "not a public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "could not be read"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "a certificate"),
        ("-----BEGIN DSA PARAMETERS-----\nAAAA\n-----END DSA PARAMETERS-----", "not a public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq user@host", "OpenSSH public key"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ({}, "no 'kty'"),
        ({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}, "'P-384' is not supported"),
        ({"kty": "OKP", "crv": "X25519", "x": "AA"}, "'X25519' is not supported"),
        ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "must be 32 bytes"),
        ({"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43}, "valid EC public key"),
        ({"kty": "EC", "crv": "P-256", "x": "!!!", "y": "A" * 43}, "not base64url"),
        ({"kty": "RSA", "n": "AQAB"}, "no 'e'"),
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "valid RSA public key"),
        ({"kty": "DSA"}, "kty 'DSA' is not supported"),
        ({"kty": 7}, "no 'kty'"),
        ({"keys": []}, "other than one key"),
        ({"keys": [{"kty": "OKP"}, {"kty": "OKP"}]}, "other than one key"),
        (b"\x30\x82\x01\x00garbage", "not a public key"),
        (b"\xff\xfe\x00", "not a public key"),
        ("x" * (17 * 1024), "longer than 16 KiB"),
    ],
)
def test_malformed_input_is_refused_in_one_line(value, match):
    refused(value, match)


def test_two_keys_at_once_are_refused():
    both = public_pem(KEYS["ES256"]) + public_pem(KEYS["RS256"])
    refused(both, "one public key at a time")


def test_a_jwk_for_something_else_than_verifying_is_refused():
    jwk = parse_public_key(public_pem(KEYS["ES256"])).jwk()
    refused({**jwk, "alg": "ES384"}, "verifies ES256 here")
    refused({**jwk, "alg": "HS256"}, "verifies ES256 here")
    refused({**jwk, "use": "enc"}, "not for signatures")
    refused({**jwk, "key_ops": ["encrypt"]}, "'verify'")
    refused({**jwk, "kid": 7}, "'kid' is not a string")
    refused({**jwk, "kid": "has space"}, "printable ASCII")
    long = refused({**jwk, "use": "x" * 5000 + "\n"}, "not for signatures")
    assert "x" * 21 not in long and "\n" not in long
    ed = parse_public_key(public_pem(KEYS["EdDSA"])).jwk()
    refused({**ed, "x": ed["x"][:-3]}, "must be 32 bytes")


@pytest.mark.parametrize("kid", ["", "a b", "é", "x" * 129, "tab\t", "nul\x00"])
def test_bad_kids_are_refused(kid):
    with pytest.raises(PublicKeyError):
        check_kid(kid)


@pytest.mark.parametrize("kid", ["k", "2024-01", "arn:aws:kms:eu-west-1:1:key/abc", "x" * 128])
def test_kids_signers_use_are_taken(kid):
    assert check_kid(kid) == kid


# -------------------------------------------------------------- generation


@pytest.mark.parametrize(("alg", "description"), [("ES256", "EC P-256"), ("EdDSA", "Ed25519")])
def test_generated_pairs_are_accepted_and_private(alg, description):
    private_text, public_text = publickeys.generate_key_pair(alg)
    assert private_text.startswith("-----BEGIN PRIVATE KEY-----")
    assert public_text.startswith("-----BEGIN PUBLIC KEY-----")
    assert parse_public_key(public_text).description == description
    refused(private_text, "private key")
    loaded = serialization.load_pem_private_key(private_text.encode(), None)
    assert loaded.public_key().public_bytes(PEM, SPKI).decode() == public_text
    assert publickeys.generate_key_pair(alg)[1] != public_text  # a new pair each time


def test_a_generated_rsa_pair_is_3072_bits():
    _, public_text = publickeys.generate_key_pair("RS256")
    assert parse_public_key(public_text).description == "RSA 3,072 bits"
    with pytest.raises(PublicKeyError, match="unknown algorithm"):
        publickeys.generate_key_pair("HS256")
