"""Signing a user id with a platform's current secret and verifying a signature.

The HMAC itself is in the plain-Python ``trusted_identity.signing``; this module
picks the platform's keys (current, and previous ones inside their grace).
"""

from __future__ import annotations

import time

from ..exceptions import ServiceUnavailable
from ..signing import sign, verify
from .access import Actor, authorize
from .audit import audit
from .lookup import PlatformSnapshot, keys_of, lookup_platform
from .spaces import get_platform


def sign_user_id(snapshot: PlatformSnapshot, user_id: str) -> str:
    """The signature of ``user_id`` with the platform's current secret."""
    for key, expires_at in keys_of(snapshot):
        if expires_at is None:
            return sign(key, user_id)
    raise ServiceUnavailable(f"platform #{snapshot.platform_id} has no current secret")


def sign_for(space_slug: str, kind: str, user_id: str, actor: Actor | None = None) -> str:
    """The signature of ``user_id`` for a platform named by space slug and kind.

    With an ``actor`` (the CLI's ``sign``), they must be allowed to sign in that space,
    and an audit entry on the platform names them and the user id, never the
    signature. Without one (the sign view's hot path, which signs the logged-in
    user's own id), nothing is written.
    """
    platform = get_platform(space_slug, kind)
    if actor is not None:
        authorize(actor, "sign", platform.space_id)
    signed = sign_user_id(lookup_platform(platform.api_key), user_id)
    if actor is not None:
        audit(actor, platform, f"Signed user id {user_id!r} with the current secret.")
    return signed


def verify_user_id(snapshot: PlatformSnapshot, user_id: str, signature: str) -> bool:
    """Whether ``signature`` is valid for ``user_id`` under any still-valid secret.

    The hot path of session start: grace ends are compared as Unix times and
    keys come from the per-process decryption memo, so a warm call costs about
    what a hand-written ``hmac`` check does (``make bench``, key ``verify_ratio``).
    """
    now = time.time()
    valid = [key for key, expires_at in keys_of(snapshot) if expires_at is None or expires_at > now]
    return verify(valid, user_id, signature)
