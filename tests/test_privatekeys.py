"""The site's private keys read and used (``trusted_identity.privatekeys``): what can sign
here, what is refused in one line that never repeats the key, and the tokens made,
held to PyJWT and to this app's own verifier."""

from __future__ import annotations

import base64
import json
import re

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from trusted_identity.keytokens import KeySet, VerifyingKey, verify_key_token
from trusted_identity.privatekeys import (
    MAX_KEY_FILE,
    PrivateKeyError,
    TokenSigner,
    load_private_key,
    parse_private_key,
)
from trusted_identity.publickeys import generate_key_pair, parse_public_key
from trusted_identity.tokens import TokenMemo

from .keytoken_helpers import NOW

PAIRS = {alg: generate_key_pair(alg) for alg in ("ES256", "EdDSA")}
RSA_KEY = rsa.generate_private_key(65537, 2048)


def pem(private, fmt=serialization.PrivateFormat.PKCS8, password=None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def pair(alg: str) -> tuple[str, str]:
    if alg == "RS256":
        public = RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem(RSA_KEY).decode(), public.decode()
    return PAIRS[alg]


def body_of(text: str | bytes) -> str:
    """The base64 between a PEM's lines: what no message may hold a piece of."""
    text = text.decode() if isinstance(text, bytes) else text
    return "".join(line for line in text.splitlines() if not line.startswith("-----"))


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_token_verifies_with_pyjwt_and_here(alg):
    private_pem, public_pem = pair(alg)
    key = parse_private_key(private_pem.encode())
    assert key.alg == alg
    assert key.public == parse_public_key(public_pem)
    signer = TokenSigner(key, "kid-1")
    for user_id in ("42", " 42", "Zoë", "用户-🚀", 'q"\\/', "\x01tab\t", "x" * 1024):
        token = signer.token(user_id, NOW - 10, NOW + 600)
        assert jwt.get_unverified_header(token) == {"alg": alg, "typ": "JWT", "kid": "kid-1"}
        claims = jwt.decode(
            token, public_pem, algorithms=[alg], options={"verify_exp": False, "verify_iat": False}
        )
        assert claims == {"sub": user_id, "iat": NOW - 10, "exp": NOW + 600}
        keys = KeySet([VerifyingKey(parse_public_key(public_pem), "kid-1", 1, None)])
        reason, verifying = verify_key_token(
            keys, user_id, token, now=NOW, leeway=60, max_age=3600, memo=TokenMemo()
        )
        assert (reason, verifying.kid) == (None, "kid-1"), user_id


def test_es256_signs_r_and_s_as_jws_has_them():
    key = parse_private_key(PAIRS["ES256"][0].encode())
    for _ in range(20):  # leading zero bytes of r or s keep their place
        signature = key.sign(b"message")
        assert len(signature) == 64
    token = TokenSigner(key, "k").token("42", NOW, NOW + 60)
    assert len(base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")) == 64


def test_the_claims_are_spelt_as_the_verifier_reads_without_its_json_decoder():
    token = TokenSigner(parse_private_key(PAIRS["EdDSA"][0].encode()), "k").token("Zoë", 1, 2)
    claims = base64.urlsafe_b64decode(token.split(".")[1] + "==")
    assert claims == '{"sub":"Zoë","iat":1,"exp":2}'.encode()


@pytest.mark.parametrize(
    "fmt",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
)
def test_pkcs8_and_the_traditional_pem_forms_are_read(fmt):
    for private in (ec.generate_private_key(ec.SECP256R1()), RSA_KEY):
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert parse_private_key(pem(private, fmt)).public.spki_der == der


def test_openssl_ecparam_output_with_its_parameters_block_is_read():
    private = ec.generate_private_key(ec.SECP256R1())
    parameters = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    text = parameters + pem(private, serialization.PrivateFormat.TraditionalOpenSSL)
    assert parse_private_key(text).alg == "ES256"


def refusal(data: bytes) -> str:
    with pytest.raises(PrivateKeyError) as info:
        parse_private_key(data)
    message = str(info.value)
    assert "\n" not in message
    body = body_of(data)
    for start in range(0, max(0, len(body) - 12), 12):
        assert body[start : start + 12] not in message, "the message repeats the key"
    return message


def test_what_can_not_sign_here_is_refused_in_one_line_without_the_key():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "a public key": PAIRS["ES256"][1].encode(),
        "encrypted with a password": pem(ec_key, password=b"pw"),
        "encrypted with a password ": pem(
            ec_key, serialization.PrivateFormat.TraditionalOpenSSL, password=b"pw"
        ),
        "an OpenSSH private key": pem(
            ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH
        ),
        "1,024 bits is too weak": pem(rsa.generate_private_key(65537, 1024)),
        "secp384r1 is not supported": pem(ec.generate_private_key(ec.SECP384R1())),
        "an Ed448 key is not supported": pem(ed448.Ed448PrivateKey.generate()),
        "not a PEM private key": b"tis_web_" + b"a" * 48,
        "one private key per platform": PAIRS["ES256"][0].encode() * 2,
        "CERTIFICATE block is not a private key": b"-----BEGIN CERTIFICATE-----\nAAAA\n"
        b"-----END CERTIFICATE-----\n",
        "could not be read (damaged": PAIRS["ES256"][0].encode()[:120]
        + b"\n-----END PRIVATE KEY-----\n",
    }
    for words, data in cases.items():
        assert words.strip() in refusal(data), words


def test_a_file_path_is_read_and_a_bad_one_is_named(tmp_path):
    path = tmp_path / "web.pem"
    path.write_text(PAIRS["EdDSA"][0])
    assert load_private_key(str(path)).alg == "EdDSA"
    assert load_private_key(f"  {path}\n").alg == "EdDSA"  # as an env file may leave it
    assert load_private_key(PAIRS["EdDSA"][0]).alg == "EdDSA"  # PEM text itself
    for value, words in (
        (str(tmp_path / "missing.pem"), "No such file or directory"),
        (str(tmp_path), "Is a directory"),
        ("a\x00b", "not a path"),
    ):
        with pytest.raises(PrivateKeyError, match=re.escape(words)):
            load_private_key(value)
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (MAX_KEY_FILE + 1))
    with pytest.raises(PrivateKeyError, match="larger than one private key"):
        load_private_key(str(big))


def test_nothing_shows_the_private_key():
    key = parse_private_key(PAIRS["ES256"][0].encode())
    signer = TokenSigner(key, "k")
    shown = repr(key) + repr(signer)
    assert key.public.fingerprint in repr(key)
    assert body_of(PAIRS["ES256"][0])[-40:] not in shown
    assert not hasattr(key, "__dict__")  # nothing but its slots: vars() shows nothing
    with pytest.raises(TypeError):
        json.dumps(key)
