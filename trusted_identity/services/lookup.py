"""The hot path's platform lookup, its caches and their invalidation.

Owns the :class:`PlatformSnapshot` session start works from (ciphertexts only),
the shared cache (Django's, ``CACHE_ALIAS``) and the per-process near cache in
front of it, the per-process memo of decrypted keys, and the verification
generation: :func:`verification_changed` is called inside the transaction of
every change that alters verification, and every process reads the generation
at most every ``LOOKUP_CHECK_INTERVAL`` seconds and serves only what it looked
up at the current one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

from django.core.cache import caches
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .. import tokens
from ..conf import app_settings
from ..crypto import DecryptionError, KeyRing
from ..exceptions import InvalidApiKey, ServiceUnavailable
from ..keyring import get_key_ring
from ..models import AllowedOrigin, Platform, PlatformKind, PlatformSecret, VerificationGeneration
from ..nearcache import near_cache
from ..signing import HmacKey

logger = logging.getLogger("trusted_identity")


@dataclass(frozen=True)
class SecretSnapshot:
    secret_id: int  # the row, which the ciphertext is bound to
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
    # The origins whose pages may start sessions from a browser (CORS); web platforms only.
    origins: frozenset[str] = field(default=frozenset())
    signature_form: str = "plain"  # plain | either | token (services.signature_forms)
    token_max_age: int = Platform.DEFAULT_TOKEN_MAX_AGE  # seconds


# ------------------------------------------------------------ the generation


class GenerationTracker:
    """This process's view of the verification generation, read at most once an interval.

    Reading it is one primary-key SELECT per process per ``LOOKUP_CHECK_INTERVAL``,
    not per request. While the database can't be read, the last value stands: no
    change can commit then either.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = -1
        self._next_check = 0.0

    def current(self) -> int:
        if time.monotonic() < self._next_check:
            return self._value
        with self._lock:
            now = time.monotonic()
            if now >= self._next_check:
                try:
                    self._value = read_generation()
                except DatabaseError:
                    logger.warning("Trusted Identity could not read the verification generation")
                self._next_check = now + float(app_settings.LOOKUP_CHECK_INTERVAL)
        return self._value

    def expire(self) -> None:
        """Read the generation again on the next lookup (this process made a change)."""
        self._next_check = 0.0


generation_tracker = GenerationTracker()


def read_generation() -> int:
    value = (
        VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON)
        .values_list("value", flat=True)
        .first()
    )
    return value or 0


def verification_changed() -> None:
    """Record a change that alters verification, inside the transaction that makes it.

    Bumps the generation in the database, so that every serving process, whatever
    its cache, stops using what it looked up before within ``LOOKUP_CHECK_INTERVAL``
    of the commit; this process at once.
    """
    rows = VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON)
    if not rows.update(value=F("value") + 1):
        try:
            with transaction.atomic():
                VerificationGeneration.objects.create(value=1)
        except IntegrityError:  # created meanwhile by another writer
            rows.update(value=F("value") + 1)
    # Now, for what this connection reads next (a test's own transaction, which never
    # commits), and again at the commit, for everything else.
    generation_tracker.expire()
    transaction.on_commit(generation_tracker.expire)


# ------------------------------------------------------------------ lookups


def cache_key(api_key: str, generation: int) -> str:
    """The shared cache's key for a platform at a generation.

    API keys are URL-safe; hashing keeps odd client input from making odd cache
    keys. Entries of older generations are never read again and expire.
    """
    digest = hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()
    return f"trusted_identity:platform:v4:{generation}:{digest}"


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _load_snapshot(api_key: str) -> PlatformSnapshot | None:
    platform = (
        Platform.objects.select_related("space")
        .only("id", "kind", "enforced", "signature_form", "token_max_age", "space__slug")
        .filter(api_key=api_key)
        .first()
    )
    if platform is None:
        return None
    now = timezone.now()
    rows = PlatformSecret.objects.filter(platform_id=platform.pk).values_list(
        "pk", "ciphertext", "retired_at", "valid_until"
    )
    origins: frozenset[str] = frozenset()
    if platform.kind == PlatformKind.WEB:
        origins = frozenset(
            AllowedOrigin.objects.filter(platform_id=platform.pk).values_list("origin", flat=True)
        )
    return PlatformSnapshot(
        platform_id=platform.pk,
        space_slug=platform.space.slug,
        kind=platform.kind,
        enforced=platform.enforced,
        signature_form=platform.signature_form,
        token_max_age=platform.token_max_age,
        secrets=tuple(
            SecretSnapshot(pk, ciphertext, None if retired is None else until.timestamp())
            for pk, ciphertext, retired, until in rows
            if retired is None or (until is not None and until > now)
        ),
        origins=origins,
    )


def lookup_platform(api_key: str) -> PlatformSnapshot:
    """The platform behind a public API key: from process memory or the shared cache when warm.

    Both caches hold what was read at the current verification generation only.
    The generation is read before the database, so a lookup racing a change can
    at worst store what it read under the generation the change has already left
    behind, where nobody looks again. A cache that is down is logged and skipped.
    """
    # NUL never occurs in a key, and PostgreSQL would refuse it in the query (a 503).
    if not isinstance(api_key, str) or not api_key or len(api_key) > 128 or "\x00" in api_key:
        raise InvalidApiKey("missing or unknown API key (send it in the X-Api-Key header)")
    generation = generation_tracker.current()
    local = app_settings.LOCAL_LOOKUP_CACHE
    if local:
        snapshot = near_cache.get(api_key, generation)
        if snapshot is not None:
            return snapshot
    key = cache_key(api_key, generation)
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
    if local:
        near_cache.put(api_key, snapshot, generation, app_settings.LOOKUP_CACHE_TIMEOUT)
    return snapshot


class OriginIndex:
    """Every origin on any web platform's allow-list: what a CORS preflight is checked against.

    A browser's preflight carries no API key, so it can't name its platform (see
    ``services.origins``). The set is read in one query per verification generation
    and kept in the shared cache and in process memory, so a warm preflight reads
    nothing from the database; every change to a list bumps the generation.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._origins: frozenset[str] = frozenset()

    def get(self) -> frozenset[str]:
        generation = generation_tracker.current()
        local = app_settings.LOCAL_LOOKUP_CACHE
        if local and generation == self._generation:
            return self._origins
        key = f"trusted_identity:origins:v1:{generation}"
        cache = _cache()
        try:
            origins = cache.get(key)
        except Exception:
            logger.warning("Trusted Identity cache unavailable on read; using the database")
            origins, cache = None, None
        if origins is None:
            origins = frozenset(
                AllowedOrigin.objects.filter(platform__kind=PlatformKind.WEB)
                .values_list("origin", flat=True)
                .distinct()
            )
            if cache is not None:
                try:
                    cache.set(key, origins, app_settings.LOOKUP_CACHE_TIMEOUT)
                except Exception:
                    logger.warning("Trusted Identity cache unavailable on write")
        if local:
            with self._lock:
                self._generation, self._origins = generation, origins
        return origins

    def clear(self) -> None:
        with self._lock:
            self._generation, self._origins = None, frozenset()


origin_index = OriginIndex()


def any_platform_allows(origin: str) -> bool:
    """Whether ``origin`` is on the allow-list of at least one web platform."""
    return origin in origin_index.get()


def reset_local_state() -> None:
    """Forget what this process looked up, decrypted and read (settings changed, tests)."""
    near_cache.clear()
    origin_index.clear()
    generation_tracker.expire()
    clear_plaintext_cache()


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
    return tuple(
        (
            HmacKey(
                ring.decrypt(s.ciphertext, PlatformSecret.associated_data(platform_id, s.secret_id))
            ),
            s.expires_at,
        )
        for s in secrets
    )


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
    tokens.clear()  # it remembers the keys that verified each token
