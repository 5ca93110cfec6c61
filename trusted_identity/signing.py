"""The signature: HMAC-SHA256 of the user id, keyed by the platform secret, as hex.

Plain Python with no Django import. Byte-for-byte what Node's
``crypto.createHmac("sha256", secret).update(userId).digest("hex")`` gives: both
strings are taken as UTF-8 bytes, exactly as given (no trimming, case folding or
Unicode normalisation).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable, Sequence

SIGNATURE_LENGTH = 64
_DIGEST_BYTES = 32
# What a malformed signature is compared against, so that a wrong length or a
# non-hex character costs the same work as a well-formed wrong signature.
_NEVER_MATCHES = b"\x00" * _DIGEST_BYTES


_BLOCK_SIZE = 64  # SHA-256's block size
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class HmacKey:
    """A secret prepared once for HMAC-SHA256: its keyed inner and outer hash states.

    HMAC (RFC 2104) is ``H((K ^ opad) || H((K ^ ipad) || message))``; hashing the
    two padded keys once and copying the states per message skips the per-call
    key setup (OpenSSL 3 also looks the digest up on every ``hmac.digest`` call).
    The result is byte-for-byte ``hmac.digest(secret, message, "sha256")``.
    ``secret_bytes`` keeps the key itself, for a library that takes the key as it is
    (PyJWT, in ``tokens``); like the hash states, it never appears in ``repr()``.
    """

    __slots__ = ("_inner", "_outer", "secret_bytes")

    def __init__(self, secret: str | bytes) -> None:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        self.secret_bytes = key
        if len(key) > _BLOCK_SIZE:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK_SIZE, b"\x00")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def __repr__(self) -> str:
        return "<HmacKey>"

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _digest(secret: str | bytes | HmacKey, message: bytes) -> bytes:
    if isinstance(secret, HmacKey):
        return secret.digest(message)
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.digest(key, message, "sha256")


def sign(secret: str | bytes | HmacKey, user_id: str) -> str:
    """The lowercase hex signature of ``user_id`` under ``secret``."""
    return _digest(secret, user_id.encode("utf-8")).hex()


def decode_signature(signature: str) -> bytes | None:
    """The 32 bytes of a 64-hex-digit signature (either case), or None if malformed."""
    if not isinstance(signature, str) or len(signature) != SIGNATURE_LENGTH:
        return None
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return None
    # fromhex skips ASCII whitespace between pairs: such input decodes short.
    return raw if len(raw) == _DIGEST_BYTES else None


def verify(valid_secrets: Iterable[str | bytes | HmacKey], user_id: str, signature: str) -> bool:
    """Whether ``signature`` signs ``user_id`` under any of ``valid_secrets``.

    Every secret is tried, whatever the earlier ones gave, and each comparison is
    a constant-time comparison of the raw digests (``hmac.compare_digest``), so
    the time taken tells nothing about which secret matched or how much of the
    signature was right. Secrets may be given as str, as their UTF-8 bytes, or
    prepared as :class:`HmacKey`.
    """
    candidate = decode_signature(signature)
    against = _NEVER_MATCHES if candidate is None else candidate
    message = user_id.encode("utf-8")
    matched = False
    for secret in valid_secrets:
        matched |= hmac.compare_digest(_digest(secret, message), against)
    return matched and candidate is not None


def match_index(keys: Sequence[str | bytes | HmacKey], user_id: str, signature: str) -> int:
    """The index in ``keys`` of the first key ``signature`` signs ``user_id`` under, or -1.

    As :func:`verify`: every key is tried whatever the earlier ones gave, each with
    ``hmac.compare_digest`` on the raw digests, and a malformed signature costs the
    same work as a well-formed wrong one; only the answer says which key matched.
    """
    candidate = decode_signature(signature)
    against = _NEVER_MATCHES if candidate is None else candidate
    message = user_id.encode("utf-8")
    found = -1
    for index, key in enumerate(keys):
        if hmac.compare_digest(_digest(key, message), against) and found < 0:
            found = index
    return found if candidate is not None else -1


class SecretStr(str):
    """A secret in plaintext: the value itself to ``str()``, formatting, templates and
    ``encode()``, but masked in its ``repr()``.

    A traceback's local variables, a debugger, or Django's template engine logging a
    failed variable lookup (it logs the ``repr()`` of the whole context at DEBUG)
    show ``<secret: masked>`` instead of the value. Strings derived from it (slices,
    concatenations) are plain ``str`` again.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<secret: masked>"


SECRET_ALPHABET = string.ascii_letters + string.digits


def generate_secret(prefix: str, length: int = 48) -> str:
    """A new platform secret: ``prefix`` then ``length`` random alphanumerics.

    48 characters from 62 carry about 285 bits, above the 256 the contract asks for.
    The prefix (such as ``tis_ios_``) lets secret scanners recognise a leaked one.
    """
    return SecretStr(prefix + "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length)))
