"""The secret lifecycle of a platform: create, read, reveal, rotate and revoke.

One current secret per platform; a rotation retires it with a grace period (the
previous secret keeps verifying until then; grace 0 leaves only the new secret)
and makes a new one, with the platform's row locked so concurrent rotations
leave exactly one current secret. ``revoke_previous`` ends every grace at once.
Reveals, rotations and revocations are permission-checked and audited here. A
platform that verifies public keys only holds no secret: all three are refused for
it (:class:`~trusted_identity.exceptions.PublicKeysOnly`), saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections, router, transaction
from django.utils import timezone

from .. import signals
from ..conf import app_settings
from ..crypto import DecryptionError
from ..dbclock import database_now
from ..exceptions import InvalidRequest, PermissionDenied, PublicKeysOnly, ServiceUnavailable
from ..models import KeySource, Platform, PlatformSecret, SecretState
from ..models.core import expired_kept_since as _expired_kept_since
from ..signing import generate_secret
from .access import Actor, authorize, permissions_for
from .audit import audit, audit_many
from .durations import MAX_GRACE, describe_duration
from .lookup import verification_changed

logger = logging.getLogger("trusted_identity")


def create_secrets(platforms: Sequence[Platform], now: datetime) -> list[str]:
    """A new current secret for each platform, encrypted for its row: the plaintexts, in order.

    A ciphertext is bound to its row's primary key, which the database assigns, so
    the rows are inserted first and their ciphertexts written next, inside the
    caller's transaction: one INSERT and one UPDATE for any number of platforms.
    """
    rows = [PlatformSecret(platform=p, created_at=now, ciphertext="") for p in platforms]
    connection = connections[router.db_for_write(PlatformSecret)]
    if connection.features.can_return_rows_from_bulk_insert:
        PlatformSecret.objects.bulk_create(rows)
    else:  # pragma: no cover - every supported backend returns the new keys
        for row in rows:
            row.save()
    plaintexts = []
    for platform, row in zip(platforms, rows, strict=True):
        plaintext = generate_secret(f"{app_settings.SECRET_PREFIX}{platform.kind}_")
        row.set_secret(plaintext)
        plaintexts.append(plaintext)
    table = connection.ops.quote_name(PlatformSecret._meta.db_table)
    column = connection.ops.quote_name("ciphertext")
    key = connection.ops.quote_name(PlatformSecret._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {column} = %s WHERE {key} = %s",  # noqa: S608
            [(row.ciphertext, row.pk) for row in rows],
        )
    return plaintexts


def refuse_if_public_keys_only(platform: Platform, action: str) -> None:
    """:class:`PublicKeysOnly` for a platform that verifies public keys only: it has no
    secret to ``action`` (reveal, rotate...), and says why."""
    if platform.key_source == KeySource.PUBLIC_KEY:
        raise PublicKeysOnly(
            f"{platform} verifies public keys only: it holds no secret to {action} (its "
            "secrets were deleted when it moved to public keys, so nothing stored here can "
            "sign for it); manage its keys with add-public-key and remove-public-key"
        )


def current_secret_row(platform: Platform) -> PlatformSecret:
    row = platform.secrets.current().first()
    if row is None:
        # As the database has it now, not as the caller's row was read.
        platform.key_source = (
            Platform.objects.filter(pk=platform.pk).values_list("key_source", flat=True).first()
            or platform.key_source
        )
        refuse_if_public_keys_only(platform, "reveal")
        raise ServiceUnavailable(f"platform {platform} has no current secret")
    return row


def _decrypt(row: PlatformSecret) -> str:
    try:
        return row.get_secret()
    except DecryptionError as exc:
        logger.error(
            "Cannot decrypt secret row %s of platform %s: %s", row.pk, row.platform_id, exc
        )
        raise ServiceUnavailable(
            f"the secret of platform #{row.platform_id} (row {row.pk}) can't be decrypted: {exc}"
        ) from None


def reveal_secret(platform: Platform, actor: Actor) -> str:
    """The current secret in plaintext, for a permitted actor, always audited."""
    authorize(actor, "reveal", platform.space_id)
    plaintext = _decrypt(current_secret_row(platform))
    audit(actor, platform, "Revealed the current secret.", action="reveal")
    signals.secret_revealed.send(sender=Platform, platform=platform, user=actor.user)
    return plaintext


def _checked_grace(grace: timedelta | None) -> timedelta:
    if grace is None:
        grace = app_settings.DEFAULT_GRACE
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise InvalidRequest("the grace period must be between 0 and 90 days")
    return grace


def expired_kept_since(now: datetime | None = None) -> datetime:
    """Secrets whose grace ended at this moment or before are deleted (rotation,
    ``prune``); those that ended since are kept, encrypted and never accepted, so that a
    start signed with one is counted as ``expired_secret`` (CONTRACT section 8). The
    rule is the model's (``models.SecretState``)."""
    return _expired_kept_since(now)


def delete_expired_secrets(now: datetime | None = None) -> int:
    """Delete every secret past its retention (``prune``); how many. Never a current
    secret, one that still verifies, nor one kept for diagnosis."""
    with transaction.atomic():
        deleted, _ = PlatformSecret.objects.past_retention(now).delete()
    return deleted


def _end_graces(platform_ids: Sequence[int], until: datetime) -> int:
    """Previous secrets of these platforms that would verify past ``until`` stop then.

    Returns how many graces ended.
    """
    return (
        PlatformSecret.objects.filter(platform_id__in=platform_ids)
        .previous_in_grace(until)
        .update(valid_until=until)
    )


def _rotate_locked(locked: Sequence[Platform], actor: Actor, grace: timedelta) -> list[str]:
    """Rotate platforms whose rows the caller holds locked; the new plaintexts, in order.

    Secrets whose grace ended more than ``EXPIRED_SECRET_RETENTION`` ago are dropped
    (those that ended since are kept, never accepted, to recognise ``expired_secret``);
    the current one retires and verifies
    until ``now + grace``, earlier ones keep their own grace, except with grace 0,
    a revocation, after which only the new secret verifies; each platform gets a
    new current secret. A few statements for any number of platforms, plus one
    audit INSERT.
    """
    now = database_now()  # grace ends by the database's clock, whatever this host's
    until = now + grace
    ids = [platform.pk for platform in locked]
    PlatformSecret.objects.filter(platform_id__in=ids).past_retention(now).delete()
    if grace == timedelta(0):  # a revocation: earlier graces end too
        _end_graces(ids, now)
    PlatformSecret.objects.filter(platform_id__in=ids).current().update(
        retired_at=now, valid_until=until
    )
    plaintexts = create_secrets(locked, now)
    message = f"Rotated the secret; previous secret grace: {describe_duration(grace)}."
    if grace == timedelta(0):
        message += " Only the new secret verifies."
    audit_many(actor, locked, message, action="rotate")
    verification_changed()
    return plaintexts


def rotate_secret(platform: Platform, actor: Actor, grace: timedelta | None = None) -> str:
    """A new current secret; the old one verifies until ``grace`` has passed (0: revoked).

    Runs in one transaction with the platform row locked, so two rotations at once
    leave exactly one current secret and a failure leaves the old one current.
    Returns the new plaintext.
    """
    authorize(actor, "rotate", platform.space_id)
    grace = _checked_grace(grace)
    with transaction.atomic():
        locked = (
            Platform.objects.select_related("space")
            .select_for_update(of=("self",))
            .get(pk=platform.pk)
        )
        refuse_if_public_keys_only(locked, "rotate")
        (plaintext,) = _rotate_locked([locked], actor, grace)
    signals.secret_rotated.send(sender=Platform, platform=locked, user=actor.user, grace=grace)
    return plaintext


#: Platforms rotated per round of statements in a bulk rotation (bounds memory).
ROTATION_CHUNK = 500


def rotate_secrets(
    platforms: Iterable[Platform], actor: Actor, grace: timedelta | None = None
) -> int:
    """Rotate several platforms at once (the admin's bulk action): all of them, or none.

    One transaction; rows are locked in primary-key order, so two bulk rotations
    can't deadlock, and written in chunks of ``ROTATION_CHUNK`` with bulk
    statements. The new secrets are not returned: a person reveals them one by one.
    Returns how many platforms were rotated.
    """
    grace = _checked_grace(grace)
    platforms = list(platforms)
    if not actor.trusted:
        allowed = permissions_for(actor.user)
        if not all(allowed.can("rotate", p.space_id) for p in platforms):
            raise PermissionDenied("you may not rotate some of these platforms")
    ids = sorted({platform.pk for platform in platforms})
    rotated: list[Platform] = []
    with transaction.atomic():
        for start in range(0, len(ids), ROTATION_CHUNK):
            chunk = ids[start : start + ROTATION_CHUNK]
            locked = list(
                Platform.objects.select_related("space")  # str() in the audit names the space
                .select_for_update(of=("self",))
                .filter(pk__in=chunk)
                .order_by("pk")
            )
            for one in locked:  # all of them or none
                refuse_if_public_keys_only(one, "rotate")
            _rotate_locked(locked, actor, grace)
            rotated.extend(locked)
    for platform in rotated:
        signals.secret_rotated.send(
            sender=Platform, platform=platform, user=actor.user, grace=grace
        )
    return len(rotated)


def revoke_previous(platform: Platform, actor: Actor) -> int:
    """End every previous secret's grace now: only the current secret verifies.

    What to do after a leak when the new secret is already deployed. Audited when
    it ends anything; returns how many previous secrets stopped verifying.
    """
    authorize(actor, "rotate", platform.space_id)
    with transaction.atomic():
        locked = (
            Platform.objects.select_related("space")
            .select_for_update(of=("self",))
            .get(pk=platform.pk)
        )
        refuse_if_public_keys_only(locked, "end the grace of")
        ended = _end_graces([locked.pk], database_now())
        if ended:
            audit(
                actor,
                locked,
                f"Ended the grace of {ended} previous secret{'s' if ended != 1 else ''} "
                "now; only the current secret verifies.",
                action="end_grace",
            )
            verification_changed()
    if ended:
        signals.grace_ended.send(sender=Platform, platform=locked, user=actor.user, count=ended)
    return ended


@dataclass(frozen=True)
class VerifyingSecret:
    """A secret that still verifies, without its plaintext: for the settings page and CLI."""

    secret_id: int
    created_at: datetime
    valid_until: datetime | None  # None for the current secret

    @property
    def is_current(self) -> bool:
        return self.valid_until is None


def verifying_secrets(platform_ids: Sequence[int]) -> dict[int, list[VerifyingSecret]]:
    """Per platform, every secret that still verifies: the current one first, then the
    previous ones by the end of their grace, latest first. One query."""
    now = timezone.now()
    result: dict[int, list[VerifyingSecret]] = {pk: [] for pk in platform_ids}
    rows = (
        PlatformSecret.objects.filter(platform_id__in=platform_ids)
        .verifying(now)
        .with_state(now)
        .values_list("platform_id", "pk", "created_at", "state", "valid_until")
    )
    for platform_id, pk, created_at, state, valid_until in rows:
        until = None if state == SecretState.CURRENT else valid_until
        result[platform_id].append(VerifyingSecret(pk, created_at, until))
    for secrets in result.values():
        secrets.sort(key=lambda s: (not s.is_current, -(s.valid_until or now).timestamp()))
    return result


def previous_secret_valid_until(platform: Platform) -> datetime | None:
    """When the last of the still-verifying previous secrets stops verifying."""
    latest = (
        platform.secrets.previous_in_grace()
        .order_by("-valid_until")
        .values_list("valid_until", flat=True)
        .first()
    )
    return latest
