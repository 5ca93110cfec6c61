"""The secret lifecycle of a platform: create, read, reveal and rotate.

One current secret per platform; a rotation retires it with a grace period (the
previous secret keeps verifying until then) and makes a new one, with the
platform's row locked so concurrent rotations leave exactly one current secret.
Reveals and rotations are permission-checked and audited here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..conf import app_settings
from ..crypto import DecryptionError
from ..exceptions import InvalidRequest, PermissionDenied, ServiceUnavailable
from ..models import Platform, PlatformSecret
from ..signing import generate_secret
from .access import Actor, authorize, permissions_for
from .audit import audit, audit_many
from .durations import MAX_GRACE, describe_duration
from .lookup import invalidate_on_commit

logger = logging.getLogger("trusted_identity")


def new_secret_row(platform: Platform, now: datetime) -> tuple[PlatformSecret, str]:
    plaintext = generate_secret(f"{app_settings.SECRET_PREFIX}{platform.kind}_")
    row = PlatformSecret(platform=platform, created_at=now)
    row.set_secret(plaintext)
    return row, plaintext


def store_new_secret(platform: Platform, now: datetime) -> str:
    row, plaintext = new_secret_row(platform, now)
    row.save()
    return plaintext


def current_secret_row(platform: Platform) -> PlatformSecret:
    row = platform.secrets.filter(retired_at__isnull=True).first()
    if row is None:
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
    audit(actor, platform, "Revealed the current secret.")
    signals.secret_revealed.send(sender=Platform, platform=platform, user=actor.user)
    return plaintext


def _checked_grace(grace: timedelta | None) -> timedelta:
    if grace is None:
        grace = app_settings.DEFAULT_GRACE
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise InvalidRequest("the grace period must be between 0 and 90 days")
    return grace


def _rotate_locked(locked: Sequence[Platform], actor: Actor, grace: timedelta) -> list[str]:
    """Rotate platforms whose rows the caller holds locked; the new plaintexts, in order.

    Expired previous secrets are dropped, the current ones retire with ``grace``,
    and each platform gets a new current secret: three statements for any number
    of platforms, plus one audit INSERT.
    """
    now = timezone.now()
    ids = [platform.pk for platform in locked]
    PlatformSecret.objects.filter(platform_id__in=ids, valid_until__lt=now).delete()
    PlatformSecret.objects.filter(platform_id__in=ids, retired_at__isnull=True).update(
        retired_at=now, valid_until=now + grace
    )
    rows, plaintexts = [], []
    for platform in locked:
        row, plaintext = new_secret_row(platform, now)
        rows.append(row)
        plaintexts.append(plaintext)
    PlatformSecret.objects.bulk_create(rows)
    audit_many(
        actor, locked, f"Rotated the secret; previous secret grace: {describe_duration(grace)}."
    )
    for platform in locked:
        invalidate_on_commit(platform.api_key)
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
            _rotate_locked(locked, actor, grace)
            rotated.extend(locked)
    for platform in rotated:
        signals.secret_rotated.send(
            sender=Platform, platform=platform, user=actor.user, grace=grace
        )
    return len(rotated)


def previous_secret_valid_until(platform: Platform) -> datetime | None:
    """When the last of the still-verifying previous secrets stops verifying."""
    now = timezone.now()
    latest = (
        platform.secrets.filter(retired_at__isnull=False, valid_until__gt=now)
        .order_by("-valid_until")
        .values_list("valid_until", flat=True)
        .first()
    )
    return latest
