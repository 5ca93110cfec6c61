"""The hot path's platform lookup, its caches and their invalidation.

Owns the :class:`PlatformSnapshot` session start works from (ciphertexts and public
keys only, the stored ones and those of its JWKS URL), the shared cache (Django's,
``CACHE_ALIAS``) and the per-process near cache in front of it, and the verification
generation: :func:`verification_changed` is called inside the transaction of every
change that alters verification, and every process reads the generation at most
every ``LOOKUP_CHECK_INTERVAL`` seconds and serves only what it looked up at the
current one. What a process remembers is held by its runtime
(``trusted_identity.runtime``); a snapshot holds its own decrypted keys once prepared
(``key_tables``; never pickled: the shared cache holds ciphertexts only).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, NoReturn

from django.core.cache import caches
from django.db import IntegrityError, transaction
from django.db.models import F

from .. import runtime
from ..conf import app_settings
from ..crypto import KeyRing
from ..dbclock import database_time, read_generation_and_clock
from ..exceptions import InvalidApiKey
from ..models import (
    AllowedOrigin,
    JwksSource,
    KeySource,
    Platform,
    PlatformKind,
    PlatformSecret,
    PublicKey,
    SecretState,
    VerificationGeneration,
)
from ..state import Generation

logger = logging.getLogger("trusted_identity")


@dataclass(frozen=True)
class SecretSnapshot:
    secret_id: int  # the row, which the ciphertext is bound to
    ciphertext: str
    expires_at: float | None  # end of grace as a Unix time; None for the current secret


@dataclass(frozen=True)
class OtherSecret:
    """The current secret of another platform of the same space, for diagnosis only."""

    secret_id: int
    platform_id: int  # the row's platform, which the ciphertext is bound to
    ciphertext: str
    kind: str


@dataclass(frozen=True)
class PublicKeySnapshot:
    """One of the platform's public keys (``models.PublicKey``): public, so the shared
    cache may hold it as it is."""

    key_id: int | None  # the row; None for a key of the JWKS URL
    kid: str
    spki: bytes  # DER SubjectPublicKeyInfo
    expires_at: float | None  # Unix time; None: no expiry


@dataclass(frozen=True)
class JwksSnapshot:
    """The keys of the platform's JWKS URL as last fetched (``models.JwksSource``): public,
    each a :class:`PublicKeySnapshot` with no row (``key_id`` None, no expiry)."""

    keys: tuple[PublicKeySnapshot, ...]
    fetched_at: float | None  # Unix time of the last good fetch


def jwks_snapshot(source: JwksSource) -> JwksSnapshot:
    """A ``JwksSource`` row's set as verification holds it."""
    keys = tuple(
        PublicKeySnapshot(None, entry["kid"], base64.b64decode(entry["spki"]), None)
        for entry in source.keys
    )
    return JwksSnapshot(keys, source.fetched_at and source.fetched_at.timestamp())


class PreparedKeys:
    """A snapshot's keys as this process prepared them (``key_tables``: the secrets
    decrypted under the key ring ``ring``, the public keys parsed): a warm snapshot (one
    object in the near cache) reaches its keys without a lookup."""

    __slots__ = ("diagnostic", "keys", "public", "ring")

    def __init__(self) -> None:
        self.ring: KeyRing | None = None
        self.keys: Any = None  # key_tables.KeyTable
        self.diagnostic: Any = None  # key_tables.DiagnosticTable
        self.public: Any = None  # keytokens.KeySet

    def under(self, ring: KeyRing) -> PreparedKeys:
        """Itself, emptied first if its keys were decrypted under another ring."""
        if self.ring is not ring:
            self.ring, self.keys, self.diagnostic, self.public = ring, None, None, None
        return self


#: The most expired secrets of a platform a snapshot carries (the latest ended): what a
#: forged start can make verification try beyond the secrets that still verify.
DIAGNOSTIC_EXPIRED_MAX = 8


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
    # What verifies (models.KeySource): the secrets above, the public keys, or both.
    key_source: str = KeySource.SECRET.value
    # Every stored public key, expired ones too (a token naming one is key_expired).
    public_keys: tuple[PublicKeySnapshot, ...] = field(default=())
    # The keys of its JWKS URL, when it has one (services.jwks).
    jwks: JwksSnapshot | None = None
    # Never accepted, only to say why a signature did not verify (CONTRACT section 8):
    # this platform's secrets whose grace ended within EXPIRED_SECRET_RETENTION (the
    # latest DIAGNOSTIC_EXPIRED_MAX), and the current secrets of the space's other
    # platforms. Every change to either bumps the verification generation.
    expired: tuple[SecretSnapshot, ...] = field(default=())
    others: tuple[OtherSecret, ...] = field(default=())
    # This process's preparation of the keys above, filled on first use: neither
    # compared, nor copied by ``replace()``, nor pickled into the shared cache.
    prepared: PreparedKeys = field(
        default_factory=PreparedKeys, init=False, compare=False, repr=False
    )
    # Whether a token with a signature longer than an HMAC's is judged as a public-key
    # token: the platform holds public keys (stored or from its JWKS URL) or takes them.
    # Derived from the fields above when made (``replace()`` too) and when unpickled,
    # never stored: read on every start with a token.
    takes_public_keys: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "takes_public_keys", self._takes_public_keys())

    def _takes_public_keys(self) -> bool:
        return bool(
            self.public_keys or self.jwks is not None or self.key_source != KeySource.SECRET
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("prepared", None)
        state.pop("takes_public_keys", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, prepared=PreparedKeys())
        self.__dict__["takes_public_keys"] = self._takes_public_keys()


# ------------------------------------------------------------ the generation


def current_generation() -> Generation:
    """The verification generation as this process last read it (at most once an interval);
    the same read measures this process's offset to the database's clock."""
    return runtime.current().generation.current(read_generation_and_clock)


def _expire_generation() -> None:
    runtime.current().generation.expire()


def verification_changed() -> None:
    """Record a change that alters verification, inside the transaction that makes it.

    Bumps the generation in the database, so that every serving process, whatever
    its cache, stops using what it looked up before within ``LOOKUP_CHECK_INTERVAL``
    of the commit; this process at once.
    """
    rows = VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON)
    token = VerificationGeneration.new_token()
    if not rows.update(value=F("value") + 1, token=token):
        try:
            with transaction.atomic():
                VerificationGeneration.objects.create(value=1, token=token)
        except IntegrityError:  # created meanwhile by another writer
            rows.update(value=F("value") + 1, token=token)
    # Now, for what this connection reads next (a test's own transaction, which never
    # commits), and again at the commit, for everything else.
    _expire_generation()
    transaction.on_commit(_expire_generation)


# ------------------------------------------------------------------ lookups


def cache_key(api_key: str, generation: Generation) -> str:
    """The shared cache's key for a platform at a generation.

    API keys are URL-safe; hashing keeps odd client input from making odd cache
    keys. Entries of older generations are never read again and expire.
    """
    digest = hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()
    return f"trusted_identity:platform:v8:{generation}:{digest}"


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _load_snapshot(api_key: str) -> PlatformSnapshot | None:
    platform = (
        Platform.objects.select_related("space", "jwks")
        .only(
            "id",
            "kind",
            "enforced",
            "signature_form",
            "token_max_age",
            "key_source",
            "space__slug",
            "jwks__keys_json",
            "jwks__fetched_at",
        )
        .filter(api_key=api_key)
        .first()
    )
    if platform is None:
        return None
    # This platform's secrets and the current ones of its space's other platforms.
    mine = PlatformSecret.objects.filter(platform_id=platform.pk)
    theirs = PlatformSecret.objects.filter(platform__space_id=platform.space.pk).current()
    # Each secret's state by the database's clock (the generation was read just before).
    rows = (mine | theirs).with_state(datetime.fromtimestamp(database_time(), tz=dt_timezone.utc))
    secrets, expired, others = [], [], []
    for pk, platform_id, kind, ciphertext, state, until in rows.values_list(
        "pk", "platform_id", "platform__kind", "ciphertext", "state", "valid_until"
    ):
        expires_at = None if state == SecretState.CURRENT else until and until.timestamp()
        if platform_id != platform.pk:
            others.append(OtherSecret(pk, platform_id, ciphertext, kind))
        elif state in (SecretState.CURRENT, SecretState.PREVIOUS):
            secrets.append(SecretSnapshot(pk, ciphertext, expires_at))
        elif state == SecretState.EXPIRED:
            expired.append(SecretSnapshot(pk, ciphertext, expires_at))
    expired.sort(key=lambda s: -(s.expires_at or 0.0))
    origins: frozenset[str] = frozenset()
    if platform.kind == PlatformKind.WEB:
        origins = frozenset(
            AllowedOrigin.objects.filter(platform_id=platform.pk).values_list("origin", flat=True)
        )
    public_keys = tuple(
        PublicKeySnapshot(pk, kid, bytes(spki), expires_at and expires_at.timestamp())
        for pk, kid, spki, expires_at in PublicKey.objects.filter(platform_id=platform.pk)
        .order_by("pk")
        .values_list("pk", "kid", "spki", "expires_at")
    )
    return PlatformSnapshot(
        platform_id=platform.pk,
        space_slug=platform.space.slug,
        kind=platform.kind,
        enforced=platform.enforced,
        signature_form=platform.signature_form,
        token_max_age=platform.token_max_age,
        key_source=platform.key_source,
        public_keys=public_keys,
        jwks=_jwks_of(platform),
        secrets=tuple(secrets),
        origins=origins,
        expired=tuple(expired[:DIAGNOSTIC_EXPIRED_MAX]),
        others=tuple(sorted(others, key=lambda s: s.kind)),
    )


def _jwks_of(platform: Platform) -> JwksSnapshot | None:
    try:
        return jwks_snapshot(platform.jwks)
    except JwksSource.DoesNotExist:
        return None


UNKNOWN_API_KEY = "missing or unknown API key (send it in the X-Api-Key header)"


def _refuse_unknown(unknown: Callable[[], None] | None) -> NoReturn:
    if unknown is not None:
        unknown()
    raise InvalidApiKey(UNKNOWN_API_KEY)


def lookup_platform(api_key: str, unknown: Callable[[], None] | None = None) -> PlatformSnapshot:
    """The platform behind a public API key: from process memory or the shared cache when warm.

    Both caches hold what was read at the current verification generation only.
    The generation is read before the database, so a lookup racing a change can
    at worst store what it read under the generation the change has already left
    behind, where nobody looks again. A cache that is down is logged and skipped.

    ``unknown`` is called for a key no cache knows (malformed, remembered as no
    platform's, or missed by both caches), before the database is read: session start
    counts it against ``UNKNOWN_KEY_RATE_LIMIT`` there, and raises to refuse it. A key
    this process once found a platform for is not counted: after a change empties the
    caches, junk sent from a client's address can't keep its real key out.
    """
    # NUL never occurs in a key, and PostgreSQL would refuse it in the query (a 503).
    if not isinstance(api_key, str) or not api_key or len(api_key) > 128 or "\x00" in api_key:
        _refuse_unknown(unknown)
    generation = current_generation()
    local = app_settings.LOCAL_LOOKUP_CACHE
    if local:
        near_cache = runtime.current().near_cache
        snapshot = near_cache.get(api_key, generation)
        if snapshot is not None:
            return snapshot
    unknown_keys = runtime.current().unknown_keys
    if unknown_keys.known(api_key, generation):
        _refuse_unknown(unknown)
    key = cache_key(api_key, generation)
    snapshot, cache = _shared_get(key)
    if snapshot is None:
        real_keys = runtime.current().real_keys
        if unknown is not None and not real_keys.seen(api_key):
            unknown()  # a key this process never found a platform for: maybe junk
        snapshot = _load_snapshot(api_key)
        if snapshot is None:
            unknown_keys.add(api_key, generation)
            raise InvalidApiKey(UNKNOWN_API_KEY)
        real_keys.first_time(api_key)
        _shared_set(cache, key, snapshot)
    if local:
        near_cache.put(api_key, snapshot, generation, app_settings.LOOKUP_CACHE_TIMEOUT)
    return snapshot


def _shared_get(key: str) -> tuple[Any, Any]:
    """``(value or None, the cache)`` from the shared cache; a cache that is down is
    logged and skipped (``(None, None)``: the database answers, nothing is written back)."""
    cache = _cache()
    try:
        return cache.get(key), cache
    except Exception:
        logger.warning("Trusted Identity cache unavailable on read; using the database")
        return None, None


def _shared_set(cache: Any, key: str, value: Any) -> None:
    if cache is None:
        return
    try:
        cache.set(key, value, app_settings.LOOKUP_CACHE_TIMEOUT)
    except Exception:
        logger.warning("Trusted Identity cache unavailable on write")


def every_allowed_origin() -> frozenset[str]:
    """Every origin on any web platform's allow-list: what a CORS preflight is checked against.

    A browser's preflight carries no API key, so it can't name its platform (see
    ``services.origins``). The set is read in one query per verification generation
    and kept in the shared cache and in process memory, so a warm preflight reads
    nothing from the database; every change to a list bumps the generation.
    """
    generation = current_generation()
    local = app_settings.LOCAL_LOOKUP_CACHE
    kept = runtime.current().origins
    if local and generation == kept.generation:
        return kept.value
    key = f"trusted_identity:origins:v2:{generation}"
    origins, cache = _shared_get(key)
    if origins is None:
        origins = frozenset(
            AllowedOrigin.objects.filter(platform__kind=PlatformKind.WEB)
            .values_list("origin", flat=True)
            .distinct()
        )
        _shared_set(cache, key, origins)
    if local:
        kept.set(generation, origins)
    return origins


def any_platform_allows(origin: str) -> bool:
    """Whether ``origin`` is on the allow-list of at least one web platform."""
    return origin in every_allowed_origin()
