"""A previous secret's use since its retirement: counted by the flush to the start, at
the rotation boundary exactly, buffered or written at once; and when its grace may end."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from trusted_identity import countwrites, secretwrites
from trusted_identity.models import PlatformSecret
from trusted_identity.services import counting, durations, platform_secrets, secret_use
from trusted_identity.sketch import DistinctSketch

pytestmark = pytest.mark.django_db


def current_id(platform) -> int:
    return platform.secrets.current().get().pk


def rotate(platform, cli_actor):
    old = current_id(platform)
    platform_secrets.rotate_secret(platform, cli_actor, durations.parse_duration("24h"))
    return PlatformSecret.objects.get(pk=old)


def previous_usage(platform) -> secret_use.SecretUsage:
    return next(s for s in secret_use.secret_usage([platform.pk])[platform.pk] if not s.is_current)


def use(platform, secret_id, user, at):
    counting.record_start(platform.pk, "valid", user, form="plain", secret_id=secret_id, at=at)


def test_starts_before_the_rotation_are_not_use_since_it(platform, cli_actor):
    old = current_id(platform)
    for n in range(160):
        use(platform, old, f"user-{n}", timezone.now())
    rotate(platform, cli_actor)
    previous = previous_usage(platform)
    assert previous.verified_last_24h == 160  # the hour's counts: before the rotation
    assert previous.starts_since_retired == 0 and previous.users_since_retired == 0
    assert previous.last_used_since_retired is None
    assert previous.state == secret_use.TOO_SOON and not previous.safe_to_end


def test_written_at_once_the_boundary_is_the_retirement_to_the_microsecond(platform, cli_actor):
    old = rotate(platform, cli_actor)
    use(platform, old.pk, "before", old.retired_at - timedelta(microseconds=1))
    assert previous_usage(platform).starts_since_retired == 0
    use(platform, old.pk, "at", old.retired_at)
    use(platform, old.pk, "at", old.retired_at + timedelta(seconds=1))
    previous = previous_usage(platform)
    assert (previous.starts_since_retired, previous.users_since_retired) == (2, 1)
    assert previous.last_used_since_retired == old.retired_at + timedelta(seconds=1)
    assert previous.state == secret_use.IN_USE


def test_a_buffered_batch_spanning_the_rotation_is_split_at_it(platform, cli_actor):
    """Starts counted while the process still believed the secret current, written by a
    flush after the rotation: only those at or after ``retired_at`` count."""
    old = current_id(platform)
    batch = countwrites.Details()
    rotated = rotate(platform, cli_actor)
    moment = rotated.retired_at
    for offset, user in ((-60, 1), (-1, 2), (0, 3), (1, 3), (2, 4)):
        batch.use_secret(old, platform.pk, moment + timedelta(seconds=offset), user)
    countwrites.write_details_batch(batch)
    assert not batch.secret_uses
    row = PlatformSecret.objects.get(pk=old)
    assert row.starts_since_retired == 3
    assert DistinctSketch.from_bytes(row.users_since_retired).count() == 2
    assert row.last_verified_at == moment + timedelta(seconds=2)
    previous = previous_usage(platform)
    assert (previous.starts_since_retired, previous.users_since_retired) == (3, 2)


def test_a_current_secret_counts_nothing_since(platform):
    secret = current_id(platform)
    use(platform, secret, "u", timezone.now())
    row = PlatformSecret.objects.get(pk=secret)
    assert row.starts_since_retired == 0 and row.last_verified_at is not None


def test_folded_uses_are_counted_by_their_span(monkeypatch):
    monkeypatch.setattr(secretwrites, "MAX_BUFFERED_SECRET_USES", 4)
    now = timezone.now()
    uses = secretwrites.SecretUses(platform_id=1)
    for n in range(10):
        uses.add(now + timedelta(seconds=n), n)
    assert uses.folded and len(uses.uses) <= 4
    assert uses.since(now)[0] == 10 and uses.since(now)[1].count() == 10
    assert uses.since(now + timedelta(hours=1))[0] == 0
    assert uses.last == now + timedelta(seconds=9)
    # Straddling the retirement, the folded ones count (in use rather than a wrong "unused").
    kept = len([u for u in uses.uses if u[0] >= now + timedelta(seconds=5)])
    assert uses.since(now + timedelta(seconds=5))[0] == uses.folded + kept


def test_safe_once_unused_for_the_quiet_period(platform, cli_actor):
    old = rotate(platform, cli_actor)
    quiet = secret_use.SECRET_QUIET_PERIOD
    PlatformSecret.objects.filter(pk=old.pk).update(
        retired_at=timezone.now() - quiet - timedelta(minutes=1)
    )
    previous = previous_usage(platform)
    assert previous.state == secret_use.SAFE and previous.safe_to_end
    use(platform, old.pk, "late", timezone.now() - timedelta(minutes=5))
    previous = previous_usage(platform)
    assert previous.state == secret_use.IN_USE and not previous.safe_to_end
    PlatformSecret.objects.filter(pk=old.pk).update(
        last_verified_at=timezone.now() - quiet - timedelta(seconds=1)
    )
    previous = previous_usage(platform)
    assert previous.state == secret_use.SAFE and previous.starts_since_retired == 1
    assert previous.as_dict()["state"] == "safe"
