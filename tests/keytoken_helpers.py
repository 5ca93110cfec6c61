"""Public-key tokens made by hand for the tests: any header and claims, signed with any
key in any way (JWS's raw R || S for ES256, or DER; HS256 with any bytes; unsigned),
so that every token an attacker could send can be sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from trusted_identity.keytokens import KeySet, VerifyingKey
from trusted_identity.publickeys import parse_public_key

NOW = 1_800_000_000
HOUR, DAY = 3600, 86400


class PrivateKeys(Mapping):
    """One private key per algorithm (RSA 2,048 bits: the smallest accepted), each made
    on first use: an RSA key costs about 40 ms, and most modules that hold a set never
    sign with RSA (26 sets were made at every worker's collection)."""

    MAKERS = {
        "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate,
        "RS256": lambda: rsa.generate_private_key(65537, 2048),
    }

    def __init__(self) -> None:
        self._made: dict[str, object] = {}

    def __getitem__(self, alg: str):
        if alg not in self._made:
            self._made[alg] = self.MAKERS[alg]()
        return self._made[alg]

    def __iter__(self):
        return iter(self.MAKERS)

    def __len__(self) -> int:
        return len(self.MAKERS)


def private_keys() -> PrivateKeys:
    """A new set of keys, one per algorithm, each distinct from every other set's."""
    return PrivateKeys()


def public_pem_of(private) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def part(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return b64(text.encode("utf-8", "surrogatepass"))


def raw_signature(private, message: bytes, how: str = "jws") -> bytes:
    """``message`` signed by ``private`` the way its algorithm does (``how="der"``: an
    ECDSA signature left in DER, as ``cryptography`` and OpenSSL give it).

    ECDSA signs deterministically (RFC 6979), so the same input makes the same token:
    a DER signature's length varies with its random nonce, and the fuzz tests draw
    positions in a token, which Hypothesis must be able to replay."""
    if isinstance(private, ec.EllipticCurvePrivateKey):
        der = private.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        if how == "der":
            return der
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return private.sign(message)


def key_token(
    private=None,
    *,
    header: dict | str | None = None,
    claims: dict | str | None = None,
    alg: str | None = None,
    kid: str | None = None,
    how: str = "jws",
    hmac_key: bytes | None = None,
) -> str:
    """A token over ``header`` (default ``{"alg": alg, "typ": "JWT"}`` with ``kid``) and
    ``claims`` (default ``sub`` 42 for an hour from NOW), signed by ``private``, or with
    HMAC-SHA256 under ``hmac_key``, or unsigned when both are None."""
    if header is None:
        header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    if claims is None:
        claims = {"sub": "42", "iat": NOW, "exp": NOW + HOUR}
    signing_input = f"{part(header)}.{part(claims)}"
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    elif private is not None:
        signature = raw_signature(private, signing_input.encode(), how)
    else:
        signature = b""
    return f"{signing_input}.{b64(signature)}"


def key_set(*entries, expires: dict | None = None) -> KeySet:
    """A key set of ``(kid, private key)`` pairs, rows numbered from 1; ``expires`` maps
    a kid to its expiry (Unix time)."""
    expires = expires or {}
    return KeySet(
        [
            VerifyingKey(parse_public_key(public_pem_of(private)), kid, n, expires.get(kid))
            for n, (kid, private) in enumerate(entries, 1)
        ]
    )
