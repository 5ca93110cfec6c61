"""What verification holds of a platform's keys in this process, prepared once.

The snapshot (``lookup.PlatformSnapshot``) carries ciphertexts and public keys' DER
only, so it can sit in the shared cache; this module turns them into what a check
uses, once per process and key set: the secrets that still verify, decrypted and
prepared for HMAC (:class:`KeyTable`), those that only say why a signature did not
verify (:class:`DiagnosticTable`), and the public keys as a ``keytokens.KeySet``
(:func:`public_key_set`). Each is held by the snapshot once made, else by the
runtime's memo (a snapshot read again from the shared cache), keyed by what it was
made from: a rotation, a new key or a removed one is a new entry, never a stale one.

The public keys come from two sources, the platform's stored keys
(``models.PublicKey``) and the last good set of its JWKS URL, joined in
:func:`public_key_set`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

from .. import runtime
from ..conf import app_settings
from ..crypto import DecryptionError, KeyRing
from ..exceptions import ServiceUnavailable
from ..keyring import get_key_ring
from ..keytokens import NO_KEYS, KeySet, VerifyingKey
from ..models import PlatformSecret
from ..publickeys import PublicKey
from ..signing import HmacKey
from .lookup import OtherSecret, PlatformSnapshot, PublicKeySnapshot, SecretSnapshot

logger = logging.getLogger("trusted_identity")


KeyEntry = tuple[HmacKey, float | None]  # (prepared HMAC key, grace end or None)


class KeyTable:
    """A platform's secrets that still verified when it was looked up, decrypted.

    ``keys`` and ``ids`` (the rows) in the same order, prepared once so that a start
    before ``first_expiry`` (the earliest grace end; infinity without a previous
    secret) uses them as they are, allocating nothing; ``id_of`` the row of each key
    (the secret a token's matching key names).
    """

    __slots__ = ("entries", "first_expiry", "id_of", "ids", "keys")

    def __init__(self, entries: tuple[KeyEntry, ...], ids: tuple[int, ...]) -> None:
        self.entries = entries
        self.keys = tuple(key for key, _ in entries)
        self.ids = ids
        self.id_of: dict[HmacKey, int] = dict(zip(self.keys, ids, strict=True))
        self.first_expiry = min(
            (expires_at for _, expires_at in entries if expires_at is not None),
            default=math.inf,
        )

    def live(self, now: float) -> tuple[tuple[HmacKey, ...], tuple[int, ...]]:
        """The keys that verify at ``now``, and their rows."""
        if now < self.first_expiry:
            return self.keys, self.ids
        pairs = [
            (key, pk)
            for (key, expires_at), pk in zip(self.entries, self.ids, strict=True)
            if expires_at is None or expires_at > now
        ]
        return tuple(key for key, _ in pairs), tuple(pk for _, pk in pairs)


def _decrypt(ring: KeyRing, platform_id: int, secret_id: int, ciphertext: str) -> HmacKey:
    return HmacKey(ring.decrypt(ciphertext, PlatformSecret.associated_data(platform_id, secret_id)))


def _key_entries(ring: KeyRing, platform_id: int, secrets: tuple[SecretSnapshot, ...]) -> KeyTable:
    """Decrypt a platform's secrets: once per process and key ring (``key_table``).

    Remembered by the ciphertexts themselves, so a rotation (new ciphertexts) is a new
    entry. The plaintexts stay in this process's memory; the shared cache only
    ever holds ciphertexts.
    """
    return KeyTable(
        tuple(
            (_decrypt(ring, platform_id, s.secret_id, s.ciphertext), s.expires_at) for s in secrets
        ),
        tuple(s.secret_id for s in secrets),
    )


def key_table(snapshot: PlatformSnapshot, current: runtime.Runtime | None = None) -> KeyTable:
    """The snapshot's secrets that verify, decrypted: held by the snapshot once prepared,
    else by the runtime's memo (a snapshot read again from the shared cache).
    ``current``: the process's runtime, when the caller has read it already."""
    if current is None:
        current = runtime.current()
    prepared = snapshot.prepared
    table = prepared.keys
    # Prepared under the ring this process holds, every start's case: the ring built
    # already is compared as it is (calling get_key_ring and Slot.get cost 3.5% of a
    # plain check's instructions, docs/performance.md)
    if table is not None and prepared.ring is current.key_ring.value:
        return table
    ring = get_key_ring(current)
    prepared.under(ring)
    try:
        table = current.key_tables.get(
            (ring, snapshot.platform_id, snapshot.secrets),
            _key_entries,
            ring,
            snapshot.platform_id,
            snapshot.secrets,
        )
    except DecryptionError as exc:
        logger.error("Cannot decrypt a secret of platform #%s: %s", snapshot.platform_id, exc)
        raise ServiceUnavailable(
            "this platform's secrets can't be read right now; the operator has been told"
        ) from None
    prepared.keys = table
    return table


def keys_of(snapshot: PlatformSnapshot) -> tuple[KeyEntry, ...]:
    return key_table(snapshot).entries


class DiagnosticKey(NamedTuple):
    """A secret that never verifies, tried only to say why a signature did not."""

    key: HmacKey
    secret_id: int
    kind: str | None  # the other platform's kind; None for an expired secret of this one
    expires_at: float | None  # when an expired secret's grace ended


class DiagnosticTable:
    """The expired and other platforms' secrets of a snapshot, decrypted, in the order
    they are tried: ``keys`` beside ``entries``, as they stand until ``steady_until``
    (when the first expired one leaves ``EXPIRED_SECRET_RETENTION``)."""

    __slots__ = ("entries", "keys", "steady_until")

    def __init__(self, entries: tuple[DiagnosticKey, ...], retention: float) -> None:
        self.entries = entries
        self.keys = tuple(d.key for d in entries)
        self.steady_until = min(
            (d.expires_at + retention for d in entries if d.expires_at is not None),
            default=math.inf,
        )


def _diagnostic_table(
    ring: KeyRing,
    platform_id: int,
    expired: tuple[SecretSnapshot, ...],
    others: tuple[OtherSecret, ...],
) -> DiagnosticTable:
    """Decrypted once per process, on the first start that needs them (a valid start
    never does). One that can't be decrypted is left out, logged: a diagnosis never
    makes a start fail."""
    found = []
    for pk, owner, ciphertext, kind, expires_at in [
        *((s.secret_id, platform_id, s.ciphertext, None, s.expires_at) for s in expired),
        *((s.secret_id, s.platform_id, s.ciphertext, s.kind, None) for s in others),
    ]:
        try:
            found.append(DiagnosticKey(_decrypt(ring, owner, pk, ciphertext), pk, kind, expires_at))
        except DecryptionError as exc:
            logger.warning("Cannot decrypt secret row %s of platform #%s: %s", pk, owner, exc)
    return DiagnosticTable(tuple(found), app_settings.EXPIRED_SECRET_RETENTION.total_seconds())


#: The table of a snapshot with nothing to diagnose with (immutable).
_NO_DIAGNOSTIC = DiagnosticTable((), 0.0)


def _diagnostic_table_of(snapshot: PlatformSnapshot) -> DiagnosticTable:
    if not snapshot.expired and not snapshot.others:
        return _NO_DIAGNOSTIC
    ring = get_key_ring()
    prepared = snapshot.prepared.under(ring)
    table = prepared.diagnostic
    if table is None:
        table = runtime.current().diagnostic_tables.get(
            (ring, snapshot.platform_id, snapshot.expired, snapshot.others),
            _diagnostic_table,
            ring,
            snapshot.platform_id,
            snapshot.expired,
            snapshot.others,
        )
        prepared.diagnostic = table
    return table


def diagnostic_keys(
    snapshot: PlatformSnapshot, now: float
) -> tuple[Sequence[HmacKey], Sequence[DiagnosticKey]]:
    """The secrets that may say why a signature did not verify at ``now``, as keys and
    their entries in the same order: this platform's secrets whose grace ended within
    ``EXPIRED_SECRET_RETENTION`` (those that ended since the lookup included), latest
    first, then the current secrets of the space's other platforms. Never ones that
    verify. A warm snapshot with no grace ended since its lookup allocates nothing."""
    table = key_table(snapshot)
    diagnostic = _diagnostic_table_of(snapshot)
    if now < table.first_expiry and now < diagnostic.steady_until:
        return diagnostic.keys, diagnostic.entries
    kept_since = now - app_settings.EXPIRED_SECRET_RETENTION.total_seconds()
    ended = [
        DiagnosticKey(key, pk, None, expires_at)
        for (key, expires_at), pk in zip(table.entries, table.ids, strict=True)
        if expires_at is not None and kept_since < expires_at <= now
    ]
    ended.sort(key=lambda d: -(d.expires_at or 0.0))
    entries = ended + [
        d for d in diagnostic.entries if d.expires_at is None or kept_since < d.expires_at <= now
    ]
    return [d.key for d in entries], entries


# ------------------------------------------------------------------ public keys


def _key_set(
    public_keys: tuple[PublicKeySnapshot, ...], fetched: tuple[PublicKeySnapshot, ...] = ()
) -> KeySet:
    """Parse a platform's public keys, once per process and set of keys: the stored ones,
    then those of its JWKS URL (``fetched``) but for a kid or a key a stored one already
    has (the key added here wins). A key that no longer parses (it did when it was
    stored) is left out, logged."""
    keys: list[VerifyingKey] = []
    for stored in (*public_keys, *fetched):
        if stored.key_id is None and any(
            k.kid == stored.kid or k.spki == stored.spki for k in public_keys
        ):
            continue
        try:
            parsed = PublicKey.from_der(stored.spki)
        except ValueError as exc:
            logger.error("Cannot read public key %s: %s", stored.key_id or stored.kid, exc)
            continue
        keys.append(VerifyingKey(parsed, stored.kid, stored.key_id, stored.expires_at))
    return KeySet(keys)


def public_key_set(snapshot: PlatformSnapshot) -> KeySet:
    """The platform's public keys as a ``keytokens.KeySet`` (expired ones included, to
    say ``key_expired``): held by the snapshot once made, else by the runtime's memo,
    keyed by the keys themselves, so a key added, expired or removed, or a new JWKS
    set, is a new set of new objects (the verified-token memo then checks its tokens
    again).

    Two sources: the stored keys (``models.PublicKey``) and the last good set of the
    platform's JWKS URL (``services.jwks``), joined by :func:`_key_set`."""
    fetched = snapshot.jwks.keys if snapshot.jwks is not None else ()
    if not snapshot.public_keys and not fetched:
        return NO_KEYS
    prepared = snapshot.prepared
    keys = prepared.public
    if keys is None:
        keys = runtime.current().public_key_sets.get(
            (snapshot.platform_id, snapshot.public_keys, fetched),
            _key_set,
            snapshot.public_keys,
            fetched,
        )
        prepared.public = keys
    return keys
