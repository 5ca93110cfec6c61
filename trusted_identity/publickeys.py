"""The public keys of public-key platforms (CONTRACT section 10): read, refused, named.

Plain Python with no Django import; ``cryptography`` reads the keys. A key comes as
PEM (SubjectPublicKeyInfo, ``-----BEGIN PUBLIC KEY-----``; an RSA key's PKCS #1
``BEGIN RSA PUBLIC KEY`` too), as DER bytes of the same, or as a JWK (a dict, its JSON
text, or a JWK Set holding exactly one key). :func:`parse_public_key` answers a
:class:`PublicKey` or raises :class:`PublicKeyError` with one line for a person, which
never repeats the input (it may be a private key pasted by mistake):

- **private keys are refused**, whatever their form: a PEM ``... PRIVATE KEY`` block,
  DER that reads as a private key, a JWK with ``d`` (or any other private member), a
  symmetric JWK (``kty: oct``), a PuTTY key file;
- **only three kinds of key**: EC on P-256 (``ES256``), Ed25519 (``EdDSA``) and RSA of
  2,048 to 8,192 bits with the public exponent 65537 (``RS256``); any other curve,
  size or type is refused, naming what it is;
- **one key at a time**, whole: a certificate, an OpenSSH key or anything else is
  refused with what to run to get the PEM.

A key is named by its RFC 7638 thumbprint (the default ``kid``: the same for the PEM
and the JWK of one key) and shown by its fingerprint, ``SHA256:`` and the base64 of
the SHA-256 of its SubjectPublicKeyInfo DER: what ``openssl pkey -pubin -outform DER |
openssl dgst -sha256 -binary | base64`` prints. :func:`generate_key_pair` makes a pair
for ``generate-key-pair``; nothing here stores anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

ES256, EDDSA, RS256 = "ES256", "EdDSA", "RS256"
ALGORITHMS = (ES256, EDDSA, RS256)
#: The JWK ``kty`` of each algorithm's keys.
KEY_TYPES = {ES256: "EC", EDDSA: "OKP", RS256: "RSA"}
MIN_RSA_BITS = 2048
#: Larger keys cost more per verification and no signer needs them.
MAX_RSA_BITS = 8192
RSA_EXPONENT = 65537
#: The size of a key generated for RS256: past 2030 too, by NIST SP 800-57.
GENERATED_RSA_BITS = 3072
#: The most text (or bytes) read as one key: a PEM of an 8,192-bit RSA key is 1.5 KB.
MAX_INPUT = 16 * 1024
MAX_KID_LENGTH = 128

_SUPPORTED = "use EC P-256 (ES256), Ed25519 (EdDSA) or RSA of at least 2,048 bits (RS256)"
_PEM_LABEL = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class PublicKeyError(ValueError):
    """Why a key was refused, in one line for a person; never the key's text."""


def _shown(value: Any) -> str:
    """A JWK member's value as a message names it: short, printable ASCII, one line."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text if len(text) <= 20 else text[:17] + "...")


@dataclass(frozen=True)
class PublicKey:
    """A public key that may verify tokens here: its algorithm and its DER
    (SubjectPublicKeyInfo), with the ``kid`` its JWK named, if any."""

    alg: str
    spki_der: bytes
    jwk_kid: str | None = None
    key: Any = field(default=None, compare=False, repr=False)  # cryptography's key object

    @classmethod
    def from_der(cls, der: bytes) -> PublicKey:
        """A stored key again (its DER was checked when it was added)."""
        return _checked(serialization.load_der_public_key(der))

    @classmethod
    def of(cls, key: Any) -> PublicKey:
        """A key object verification holds (``keytokens.VerifyingKey.key``), to name it."""
        return _checked(key)

    @property
    def kty(self) -> str:
        return KEY_TYPES[self.alg]

    @property
    def spki_pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @property
    def description(self) -> str:
        """``EC P-256``, ``Ed25519`` or ``RSA 3,072 bits``."""
        if self.alg == RS256:
            return f"RSA {self.key.key_size:,} bits"
        return "EC P-256" if self.alg == ES256 else "Ed25519"

    @property
    def fingerprint(self) -> str:
        """``SHA256:`` and the unpadded base64 of the SHA-256 of the SPKI DER."""
        digest = hashlib.sha256(self.spki_der).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def jwk(self) -> dict[str, str]:
        """The public JWK: the members RFC 7638 hashes, in its order."""
        if self.alg == RS256:
            numbers = self.key.public_numbers()
            return {"e": _b64url_int(numbers.e), "kty": "RSA", "n": _b64url_int(numbers.n)}
        if self.alg == ES256:
            numbers = self.key.public_numbers()
            x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
            return {"crv": "P-256", "kty": "EC", "x": _b64url(x), "y": _b64url(y)}
        raw = self.key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 JWK thumbprint (SHA-256, base64url): the default ``kid``."""
        canonical = json.dumps(self.jwk(), separators=(",", ":"), sort_keys=True)
        return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


# ------------------------------------------------------------------- reading


def parse_public_key(value: str | bytes | Mapping[str, Any]) -> PublicKey:
    """The public key in ``value`` (PEM, DER bytes, a JWK as a dict or JSON text), or
    :class:`PublicKeyError` saying why it is refused."""
    if isinstance(value, Mapping):
        return _from_jwk(value)
    if len(value) > MAX_INPUT:
        raise PublicKeyError(f"that is longer than {MAX_INPUT // 1024} KiB: not one public key")
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return _from_der(value)
        if "\x00" in text or not text.strip():
            return _from_der(value)
    else:
        text = value
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise PublicKeyError("no key given: paste a PEM public key or a JWK")
    if text.startswith(("{", "[")):
        try:
            jwk = json.loads(text)
        except ValueError:
            raise PublicKeyError(
                "not a JWK: the text starting with '{' is not valid JSON"
            ) from None
        if not isinstance(jwk, dict):
            raise PublicKeyError("not a JWK: the JSON is not an object")
        return _from_jwk(jwk)
    if "-----BEGIN" in text:
        return _from_pem(text)
    if text.startswith("PuTTY-User-Key-File"):
        raise _private_refused()
    if text.startswith(("ssh-", "ecdsa-sha2-", "sk-")):
        raise PublicKeyError(
            "an OpenSSH public key: give its PEM instead "
            "(ssh-keygen -e -m PKCS8 -f KEY.pub prints it)"
        )
    raise PublicKeyError(
        'not a public key: paste a PEM (-----BEGIN PUBLIC KEY-----) or a JWK ({"kty": ...})'
    )


def _private_refused() -> PublicKeyError:
    return PublicKeyError(
        "this is a private key: it was not stored, and it must never leave your server; "
        "give its public half (openssl pkey -in KEY.pem -pubout prints it)"
    )


def _from_pem(text: str) -> PublicKey:
    labels = _PEM_LABEL.findall(text)
    if any("PRIVATE KEY" in label for label in labels) or "PRIVATE KEY-----" in text:
        raise _private_refused()
    if len(labels) != 1 or text.count("-----BEGIN") != 1:
        raise PublicKeyError("give one public key at a time (one -----BEGIN ... ----- block)")
    (label,) = labels
    if label in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE"):
        raise PublicKeyError(
            "a certificate: give its public key instead "
            "(openssl x509 -in CERT.pem -pubkey -noout prints it)"
        )
    if label not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        raise PublicKeyError(f"a PEM {label} block is not a public key: {_SUPPORTED}")
    try:
        key = serialization.load_pem_public_key(text.encode("ascii", "replace"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PublicKeyError(
            f"the PEM {label} block could not be read (damaged, or cut short?)"
        ) from None
    return _checked(key)


def _from_der(data: bytes) -> PublicKey:
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:
            serialization.load_der_private_key(data, password=None)
        except TypeError:  # a private key that needs a password: private all the same
            raise _private_refused() from None
        except (ValueError, UnsupportedAlgorithm):
            raise PublicKeyError(
                "not a public key: binary data that is not a DER SubjectPublicKeyInfo; "
                "paste a PEM (-----BEGIN PUBLIC KEY-----) or a JWK"
            ) from None
        raise _private_refused() from None
    return _checked(key)


def _checked(key: Any, jwk_kid: str | None = None) -> PublicKey:
    """``key`` if it is one of the three kinds accepted, as a :class:`PublicKey`."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise PublicKeyError(
                f"an EC key on {key.curve.name} is not supported: ES256 needs P-256 "
                "(secp256r1, prime256v1)"
            )
        alg = ES256
    elif isinstance(key, ed25519.Ed25519PublicKey):
        alg = EDDSA
    elif isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise PublicKeyError(
                f"an RSA key of {bits:,} bits is too weak: RS256 needs at least "
                f"{MIN_RSA_BITS:,} bits"
            )
        if bits > MAX_RSA_BITS:
            raise PublicKeyError(f"an RSA key of {bits:,} bits is over the {MAX_RSA_BITS:,} taken")
        if key.public_numbers().e != RSA_EXPONENT:
            raise PublicKeyError(
                f"an RSA key whose public exponent is not {RSA_EXPONENT} is not supported "
                "(every current tool makes keys with 65537)"
            )
        alg = RS256
    elif isinstance(key, ed448.Ed448PublicKey):
        raise PublicKeyError(f"an Ed448 key is not supported: {_SUPPORTED}")
    else:
        raise PublicKeyError(f"a {type(key).__name__} is not supported: {_SUPPORTED}")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey(alg, der, jwk_kid, key)


# --------------------------------------------------------------------- JWKs


def _member(jwk: Mapping[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise PublicKeyError(f"the JWK has no {name!r} member (a string)")
    return value


def _bytes_of(jwk: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    text = _member(jwk, name)
    if len(text) > MAX_INPUT or not _B64URL.fullmatch(text):
        raise PublicKeyError(f"the JWK's {name!r} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise PublicKeyError(f"the JWK's {name!r} is not base64url") from None
    if length is not None and len(raw) != length:
        raise PublicKeyError(f"the JWK's {name!r} must be {length} bytes, not {len(raw)}")
    return raw


def _from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    if "keys" in jwk:  # a JWK Set: one key, or say which
        keys = jwk["keys"]
        if not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], Mapping):
            raise PublicKeyError("a JWK Set with other than one key: give its keys one at a time")
        jwk = keys[0]
    kty = jwk.get("kty")
    if kty == "oct" or any(name in jwk for name in _PRIVATE_JWK_MEMBERS):
        if kty == "oct":
            raise PublicKeyError(
                "a symmetric JWK (kty oct) is a shared secret, not a public key: it was not stored"
            )
        raise _private_refused()
    kid = jwk.get("kid")
    if kid is not None:
        if not isinstance(kid, str):
            raise PublicKeyError("the JWK's 'kid' is not a string")
        kid = check_kid(kid)
    use, ops = jwk.get("use"), jwk.get("key_ops")
    if use is not None and use != "sig":
        raise PublicKeyError(f"the JWK is for {_shown(use)}, not for signatures ('use': 'sig')")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise PublicKeyError("the JWK's 'key_ops' do not include 'verify'")
    try:
        key = _key_of(jwk, kty)
    except ValueError as exc:
        if isinstance(exc, PublicKeyError):
            raise
        raise PublicKeyError(f"the JWK does not hold a valid {kty} public key") from None
    found = _checked(key, kid)
    alg = jwk.get("alg")
    if alg is not None and alg != found.alg:
        raise PublicKeyError(
            f"the JWK says 'alg': {_shown(alg)}, but a {found.description} key verifies "
            f"{found.alg} here"
        )
    return found


def _key_of(jwk: Mapping[str, Any], kty: Any) -> Any:
    if kty == "EC":
        crv = _member(jwk, "crv")
        if crv != "P-256":
            raise PublicKeyError(f"an EC key on {_shown(crv)} is not supported: ES256 needs P-256")
        x = int.from_bytes(_bytes_of(jwk, "x", 32), "big")
        y = int.from_bytes(_bytes_of(jwk, "y", 32), "big")
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    if kty == "OKP":
        crv = _member(jwk, "crv")
        if crv != "Ed25519":
            raise PublicKeyError(
                f"an OKP key on {_shown(crv)} is not supported: EdDSA needs Ed25519"
            )
        return ed25519.Ed25519PublicKey.from_public_bytes(_bytes_of(jwk, "x", 32))
    if kty == "RSA":
        n = int.from_bytes(_bytes_of(jwk, "n"), "big")
        e = int.from_bytes(_bytes_of(jwk, "e"), "big")
        if n.bit_length() > MAX_RSA_BITS:
            raise PublicKeyError(
                f"an RSA key of {n.bit_length():,} bits is over the {MAX_RSA_BITS:,} taken"
            )
        return rsa.RSAPublicNumbers(e, n).public_key()
    if not isinstance(kty, str):
        raise PublicKeyError("not a JWK: it has no 'kty' member (a string)")
    raise PublicKeyError(f"a JWK of kty {_shown(kty)} is not supported: {_SUPPORTED}")


def check_kid(kid: str) -> str:
    """A key id as taken here: 1 to 128 printable ASCII characters, no space."""
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_KID_LENGTH:
        raise PublicKeyError(f"a kid must be 1 to {MAX_KID_LENGTH} characters")
    if not all("!" <= ch <= "~" for ch in kid):
        raise PublicKeyError("a kid must be printable ASCII without spaces")
    return kid


# ------------------------------------------------------------------ making


def generate_key_pair(alg: str = ES256) -> tuple[str, str]:
    """A new key pair for ``alg``: ``(private PEM (PKCS #8), public PEM (SPKI))``."""
    if alg == ES256:
        private: Any = ec.generate_private_key(ec.SECP256R1())
    elif alg == EDDSA:
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == RS256:
        private = rsa.generate_private_key(RSA_EXPONENT, GENERATED_RSA_BITS)
    else:
        raise PublicKeyError(f"unknown algorithm {alg!r}: use {', '.join(ALGORITHMS)}")
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem
