"""The hot path's platform lookup, its caches and their invalidation.

Owns the :class:`PlatformSnapshot` session start works from (ciphertexts only),
the shared cache (Django's, ``CACHE_ALIAS``) and the per-process near cache in
front of it, the per-process memo of decrypted keys, and
:func:`invalidate_platforms`, which every write that changes what verification
sees calls after its commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from django.core.cache import caches
from django.db import transaction
from django.utils import timezone

from ..conf import app_settings
from ..crypto import DecryptionError, KeyRing
from ..exceptions import InvalidApiKey, ServiceUnavailable
from ..keyring import get_key_ring
from ..models import Platform, PlatformSecret
from ..nearcache import near_cache
from ..signing import HmacKey

logger = logging.getLogger("trusted_identity")


@dataclass(frozen=True)
class SecretSnapshot:
    ciphertext: str
    expires_at: float | None  # end of grace as a Unix time; None for the current secret


@dataclass(frozen=True)
class PlatformSnapshot:
    """What session start needs of a platform; cached, holding ciphertexts only."""

    platform_id: int
    space_slug: str
    kind: str
    enforced: bool
    secrets: tuple[SecretSnapshot, ...] = field(default=())


def cache_key(api_key: str) -> str:
    # API keys are URL-safe; hashing keeps odd client input from making odd cache keys.
    return (
        "trusted_identity:platform:v1:"
        + hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()
    )


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _load_snapshot(api_key: str) -> PlatformSnapshot | None:
    platform = (
        Platform.objects.select_related("space")
        .only("id", "kind", "enforced", "space__slug")
        .filter(api_key=api_key)
        .first()
    )
    if platform is None:
        return None
    now = timezone.now()
    rows = PlatformSecret.objects.filter(platform_id=platform.pk).values_list(
        "ciphertext", "retired_at", "valid_until"
    )
    return PlatformSnapshot(
        platform_id=platform.pk,
        space_slug=platform.space.slug,
        kind=platform.kind,
        enforced=platform.enforced,
        secrets=tuple(
            SecretSnapshot(ciphertext, None if retired is None else until.timestamp())
            for ciphertext, retired, until in rows
            if retired is None or (until is not None and until > now)
        ),
    )


def lookup_platform(api_key: str) -> PlatformSnapshot:
    """The platform behind a public API key, from the shared cache when warm.

    A cache that is down is logged and skipped: the database answers instead.
    """
    # NUL never occurs in a key, and PostgreSQL would refuse it in the query (a 503).
    if not isinstance(api_key, str) or not api_key or len(api_key) > 128 or "\x00" in api_key:
        raise InvalidApiKey("missing or unknown API key (send it in the X-Api-Key header)")
    key = cache_key(api_key)
    snapshot = near_cache.get(key)
    if snapshot is not None:
        return snapshot
    generation = near_cache.generation()
    cache = _cache()
    try:
        snapshot = cache.get(key)
    except Exception:
        logger.warning("Trusted Identity cache unavailable on read; using the database")
        snapshot = None
        cache = None
    if snapshot is None:
        snapshot = _load_snapshot(api_key)
        if snapshot is None:
            raise InvalidApiKey("missing or unknown API key (send it in the X-Api-Key header)")
        if cache is not None:
            try:
                cache.set(key, snapshot, app_settings.LOOKUP_CACHE_TIMEOUT)
            except Exception:
                logger.warning("Trusted Identity cache unavailable on write")
    if cache is not None:
        near_cache.put(key, snapshot, generation)
    return snapshot


def invalidate_platform(api_key: str) -> None:
    invalidate_platforms([api_key])


def invalidate_platforms(api_keys: Sequence[str]) -> None:
    """Drop platforms from the shared cache, then from every process's near cache."""
    keys = [cache_key(api_key) for api_key in api_keys]
    try:
        _cache().delete_many(keys)
    except Exception:
        logger.warning("Trusted Identity cache unavailable: could not invalidate platforms")
    near_cache.publish(keys)


def invalidate_on_commit(api_key: str) -> None:
    transaction.on_commit(lambda: invalidate_platform(api_key))


KeyEntry = tuple[HmacKey, float | None]  # (prepared HMAC key, grace end or None)


@lru_cache(maxsize=4096)
def _key_entries(
    ring: KeyRing, platform_id: int, secrets: tuple[SecretSnapshot, ...]
) -> tuple[KeyEntry, ...]:
    """Decrypt a platform's secrets once per process and key ring.

    Keyed by the ciphertexts themselves, so a rotation (new ciphertexts) is a new
    entry. The plaintexts stay in this process's memory; the shared cache only
    ever holds ciphertexts.
    """
    ad = PlatformSecret.associated_data(platform_id)
    return tuple((HmacKey(ring.decrypt(s.ciphertext, ad)), s.expires_at) for s in secrets)


def keys_of(snapshot: PlatformSnapshot) -> tuple[KeyEntry, ...]:
    try:
        return _key_entries(get_key_ring(), snapshot.platform_id, snapshot.secrets)
    except DecryptionError as exc:
        logger.error("Cannot decrypt a secret of platform #%s: %s", snapshot.platform_id, exc)
        raise ServiceUnavailable(
            "this platform's secrets can't be read right now; the operator has been told"
        ) from None


def clear_plaintext_cache() -> None:
    _key_entries.cache_clear()
