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
from collections.abc import Iterable

SIGNATURE_LENGTH = 64
_HEX_DIGITS = frozenset(string.hexdigits)
# What a malformed signature is compared against, so that a wrong length or a
# non-hex character costs the same work as a well-formed wrong signature.
_NEVER_MATCHES = b"\x00" * SIGNATURE_LENGTH


def sign(secret: str, user_id: str) -> str:
    """The lowercase hex signature of ``user_id`` under ``secret``."""
    return hmac.new(secret.encode("utf-8"), user_id.encode("utf-8"), hashlib.sha256).hexdigest()


def is_well_formed(signature: str) -> bool:
    """64 hex digits, either case."""
    return len(signature) == SIGNATURE_LENGTH and _HEX_DIGITS.issuperset(signature)


def verify(valid_secrets: Iterable[str], user_id: str, signature: str) -> bool:
    """Whether ``signature`` signs ``user_id`` under any of ``valid_secrets``.

    Every secret is tried, whatever the earlier ones gave, and each comparison is
    constant-time (``hmac.compare_digest``), so the time taken tells nothing about
    which secret matched or how much of the signature was right.
    """
    well_formed = is_well_formed(signature)
    candidate = signature.lower().encode("ascii") if well_formed else _NEVER_MATCHES
    message = user_id.encode("utf-8")
    matched = False
    for secret in valid_secrets:
        expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate)
    return matched and well_formed


SECRET_ALPHABET = string.ascii_letters + string.digits


def generate_secret(prefix: str, length: int = 48) -> str:
    """A new platform secret: ``prefix`` then ``length`` random alphanumerics.

    48 characters from 62 carry about 285 bits, above the 256 the contract asks for.
    The prefix (such as ``tis_ios_``) lets secret scanners recognise a leaked one.
    """
    return prefix + "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))
