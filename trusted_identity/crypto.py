"""Encryption at rest for platform secrets: an AES-256-GCM key ring.

Plain Python with no Django import, so it can be read and tested alone.

A stored token looks like ``v1:<key_id>:<base64url(nonce || ciphertext+tag)>``.
The key id names which key of the ring encrypted it, so several keys can be
active while an old one is retired (``rekey``). Every token is bound to the
caller's *associated data* (for us: the platform it belongs to): a token copied
onto another platform's row fails authentication instead of handing over the
secret. Every failure raises :class:`DecryptionError`; nothing ever falls back
to returning the token or an empty value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trusted_identity.signing import SecretStr

TOKEN_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyRingError(ValueError):
    """The configured keys are unusable (bad encoding, wrong length, none at all)."""


class DecryptionError(ValueError):
    """A token could not be decrypted. The message names the cause, never the plaintext."""


class UnknownKeyError(DecryptionError):
    """The token was encrypted with a key that is not in the ring."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"encrypted with key id {key_id!r}, which is not in TRUSTED_IDENTITY_ENCRYPTION_KEYS"
        )


def generate_key() -> str:
    """A new random 256-bit key, URL-safe base64 encoded (44 characters)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def derive_key(material: str) -> str:
    """A deterministic key from other material: only for the DEBUG development fallback."""
    digest = hashlib.sha256(b"trusted-identity development key\x00" + material.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def key_id_for(raw_key: bytes) -> str:
    """A short public identifier of a key: a hash, from which the key can't be recovered."""
    return hashlib.sha256(b"trusted-identity key id\x00" + raw_key).hexdigest()[:8]


def _decode_key(encoded: str, position: int) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KeyRingError(
            f"encryption key #{position} is not URL-safe base64 "
            "(make one with `manage.py trusted_identity generate-key`)"
        ) from None
    if len(raw) != KEY_BYTES:
        raise KeyRingError(
            f"encryption key #{position} decodes to {len(raw)} bytes; 32 are needed "
            "(make one with `manage.py trusted_identity generate-key`)"
        )
    return raw


@dataclass(frozen=True, repr=False)
class _Key:
    key_id: str
    aead: AESGCM


class KeyRing:
    """Keys in order: the first encrypts, every one decrypts."""

    def __init__(self, encoded_keys: Iterable[str]) -> None:
        keys: list[_Key] = []
        seen: set[str] = set()
        for position, encoded in enumerate(encoded_keys, start=1):
            encoded = encoded.strip()
            if not encoded:
                continue
            raw = _decode_key(encoded, position)
            key_id = key_id_for(raw)
            if key_id in seen:
                continue
            seen.add(key_id)
            keys.append(_Key(key_id, AESGCM(raw)))
        if not keys:
            raise KeyRingError("no encryption key is configured")
        self._keys = keys
        self._by_id = {key.key_id: key for key in keys}

    def __repr__(self) -> str:
        return f"<KeyRing key_ids={self.key_ids!r}>"

    @property
    def key_ids(self) -> list[str]:
        return [key.key_id for key in self._keys]

    @property
    def primary_key_id(self) -> str:
        return self._keys[0].key_id

    def encrypt(self, plaintext: str, associated_data: bytes) -> str:
        key = self._keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{TOKEN_VERSION}:{key.key_id}:{body}"

    def decrypt(self, token: str, associated_data: bytes) -> SecretStr:
        key_id, blob = self._split(token)
        key = self._by_id.get(key_id)
        if key is None:
            raise UnknownKeyError(key_id)
        try:
            plaintext = key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise DecryptionError(
                "authentication failed: the ciphertext was altered or belongs to another record"
            ) from None
        return SecretStr(plaintext.decode("utf-8"))  # masked in repr(), tracebacks, debug logs

    def key_id_of(self, token: str) -> str:
        return self._split(token)[0]

    def needs_rekey(self, token: str) -> bool:
        """True when the token was not encrypted with the first (current) key."""
        return self.key_id_of(token) != self.primary_key_id

    @staticmethod
    def _split(token: str) -> tuple[str, bytes]:
        parts = token.split(":") if isinstance(token, str) else []
        if len(parts) != 3 or parts[0] != TOKEN_VERSION:
            raise DecryptionError("not a trusted-identity ciphertext (expected v1:<key id>:<data>)")
        try:
            blob = base64.urlsafe_b64decode(parts[2].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise DecryptionError("the ciphertext is not valid base64") from None
        if len(blob) < NONCE_BYTES + 16:
            raise DecryptionError("the ciphertext is truncated")
        return parts[1], blob
