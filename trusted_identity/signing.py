"""The signature: HMAC-SHA256 of the user id, keyed by the platform secret, as hex.

Plain Python with no Django import. Byte-for-byte what Node's
``crypto.createHmac("sha256", secret).update(userId).digest("hex")`` gives: both
strings are taken as UTF-8 bytes, exactly as given (no trimming, case folding or
Unicode normalisation).
"""

from __future__ import annotations

import hmac
import secrets
import string
from collections.abc import Iterable

SIGNATURE_LENGTH = 64
_DIGEST_BYTES = 32
# What a malformed signature is compared against, so that a wrong length or a
# non-hex character costs the same work as a well-formed wrong signature.
_NEVER_MATCHES = b"\x00" * _DIGEST_BYTES


def sign(secret: str | bytes, user_id: str) -> str:
    """The lowercase hex signature of ``user_id`` under ``secret``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.digest(key, user_id.encode("utf-8"), "sha256").hex()


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


def is_well_formed(signature: str) -> bool:
    """64 hex digits, either case."""
    return decode_signature(signature) is not None


def verify(valid_secrets: Iterable[str | bytes], user_id: str, signature: str) -> bool:
    """Whether ``signature`` signs ``user_id`` under any of ``valid_secrets``.

    Every secret is tried, whatever the earlier ones gave, and each comparison is
    a constant-time comparison of the raw digests (``hmac.compare_digest``), so
    the time taken tells nothing about which secret matched or how much of the
    signature was right. Secrets may be given as str or as their UTF-8 bytes.
    """
    candidate = decode_signature(signature)
    against = _NEVER_MATCHES if candidate is None else candidate
    message = user_id.encode("utf-8")
    matched = False
    for secret in valid_secrets:
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        matched |= hmac.compare_digest(hmac.digest(key, message, "sha256"), against)
    return matched and candidate is not None


SECRET_ALPHABET = string.ascii_letters + string.digits


def generate_secret(prefix: str, length: int = 48) -> str:
    """A new platform secret: ``prefix`` then ``length`` random alphanumerics.

    48 characters from 62 carry about 285 bits, above the 256 the contract asks for.
    The prefix (such as ``tis_ios_``) lets secret scanners recognise a leaked one.
    """
    return prefix + "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))
