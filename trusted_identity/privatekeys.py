"""The site's own private keys: public-key tokens made here (CONTRACT section 10).

Plain Python with no Django import; ``cryptography`` reads and signs. A site that signs
for its own users (the sign view, the template tag, ``sign_user_id``) holds the private
half of one of a platform's public keys in ``TRUSTED_IDENTITY["PRIVATE_KEYS"]``: PEM
text, or the path of a PEM file. Nothing here stores or prints a key:

- :func:`load_private_key` reads one entry (the text, or the file it names) and
  :func:`parse_private_key` refuses, in one line that never repeats the input, what
  can't sign here: a public key given by mistake, a key encrypted with a password, an
  OpenSSH key, and every key whose public half ``publickeys`` would refuse (a weak
  RSA key, another curve, Ed448...), with that module's words;
- :class:`SigningKey` signs as JWS wants it for the key's algorithm: ES256 as the
  64-byte R || S (``cryptography`` gives DER), EdDSA, RS256 (PKCS #1 v1.5, SHA-256);
- :class:`TokenSigner` makes a token under one key and ``kid``: its header segment
  made once, then per token the claims, in the order and spelling the verifier reads
  without its JSON decoder (``jwtparts``), and one signature.

A key is parsed once per process (the runtime's memo, ``services.site_keys``), so a
token costs one signature and a few microseconds.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .publickeys import ES256, RS256, PublicKey, PublicKeyError, parse_public_key

#: The most read from a key file: an 8,192-bit RSA key's PEM is under 7 KB.
MAX_KEY_FILE = 64 * 1024
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_PRIVATE_LABELS = (b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY")
#: ``openssl ecparam -genkey`` writes the curve's block before the key's.
_BESIDE_A_KEY = (b"EC PARAMETERS",)
_ES256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class PrivateKeyError(ValueError):
    """Why a private key can't sign here, in one line; never the key's text."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class SigningKey:
    """A private key that may sign tokens here, with its public half (``public``: what a
    platform's key must be for its tokens to verify). Its repr names the public half
    only."""

    __slots__ = ("_key", "alg", "public")

    def __init__(self, key: Any, public: PublicKey) -> None:
        self._key = key
        self.alg = public.alg
        self.public = public

    def __repr__(self) -> str:
        return f"<SigningKey {self.alg} {self.public.fingerprint}>"

    def sign(self, message: bytes) -> bytes:
        """The signature of ``message`` as JWS has it for the key's algorithm."""
        if self.alg == ES256:
            r, s = decode_dss_signature(self._key.sign(message, _ES256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if self.alg == RS256:
            return self._key.sign(message, _PKCS1, _SHA256)
        return self._key.sign(message)


def _encrypted() -> PrivateKeyError:
    return PrivateKeyError(
        "the private key is encrypted with a password: give it unencrypted, readable by "
        "the site's user only (openssl pkey -in KEY.pem -out PLAIN.pem)"
    )


def parse_private_key(data: bytes) -> SigningKey:
    """The private key in ``data`` (one PEM key: PKCS #8, or SEC 1 / PKCS #1), or
    :class:`PrivateKeyError` saying why it can't sign here."""
    labels = _PEM_LABEL.findall(data)
    keys = [label for label in labels if label not in _BESIDE_A_KEY]
    if not keys:
        raise PrivateKeyError(
            "not a PEM private key (-----BEGIN PRIVATE KEY-----): "
            "`manage.py trusted_identity generate-key-pair` makes one"
        )
    if len(keys) != 1:
        raise PrivateKeyError("give one private key per platform (one -----BEGIN ... block)")
    label = keys[0]
    if b"PUBLIC KEY" in label:
        raise PrivateKeyError(
            "a public key: PRIVATE_KEYS takes the private half (the public one goes to "
            "the platform, with add-public-key)"
        )
    if label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in data:
        raise _encrypted()
    if label == b"OPENSSH PRIVATE KEY":
        raise PrivateKeyError(
            "an OpenSSH private key: convert it to PKCS #8 PEM first "
            "(ssh-keygen -p -m PKCS8 -N '' -f KEY)"
        )
    if label not in _PRIVATE_LABELS:
        raise PrivateKeyError(
            f"a PEM {label.decode('ascii')} block is not a private key: "
            "give a PEM private key (-----BEGIN PRIVATE KEY-----)"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # a password is needed
        raise _encrypted() from None
    except (ValueError, UnsupportedAlgorithm):
        raise PrivateKeyError(
            "the PEM private key could not be read (damaged, or cut short?)"
        ) from None
    try:
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public = parse_public_key(der)
    except (PublicKeyError, AttributeError, ValueError) as exc:
        message = str(exc) if isinstance(exc, PublicKeyError) else "not a key that signs"
        raise PrivateKeyError(f"it can't sign here: {message}") from None
    return SigningKey(key, public)


def load_private_key(value: str) -> SigningKey:
    """The key of one ``PRIVATE_KEYS`` entry: PEM text (starting ``-----BEGIN``), else
    the path of a PEM file, read at most :data:`MAX_KEY_FILE` bytes."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return parse_private_key(text.encode("utf-8", "replace"))
    try:
        with open(text, "rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or "not a path"
        raise PrivateKeyError(f"the key file {text!r} can't be read: {reason}") from None
    if len(data) > MAX_KEY_FILE:
        raise PrivateKeyError(f"the key file {text!r} is larger than one private key")
    return parse_private_key(data)


class TokenSigner:
    """Makes public-key tokens under one key and ``kid`` (the platform key its public half
    is): the header segment once, then the claims and one signature per token."""

    __slots__ = ("_header", "key", "kid")

    def __init__(self, key: SigningKey, kid: str) -> None:
        self.key = key
        self.kid = kid
        header = json.dumps({"alg": key.alg, "typ": "JWT", "kid": kid}, separators=(",", ":"))
        self._header = _b64url(header.encode("ascii"))

    def __repr__(self) -> str:
        return f"<TokenSigner {self.key.alg} kid={self.kid!r}>"

    def token(self, user_id: str, issued_at: int, expires_at: int) -> str:
        """A token for ``user_id``, valid from ``issued_at`` to ``expires_at`` (Unix times)."""
        sub = json.dumps(user_id, ensure_ascii=False)
        claims = f'{{"sub":{sub},"iat":{int(issued_at)},"exp":{int(expires_at)}}}'
        signing_input = f"{self._header}.{_b64url(claims.encode('utf-8'))}"
        signature = self.key.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64url(signature)}"
