"""Recording session-start outcomes per platform and hour (UTC).

The counts are what tells an admin that signing is rolled out. Writes go through
the per-process buffer of ``trusted_identity.outcomes`` as atomic increments.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from .. import outcomes


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def record_outcome(
    platform_id: int, outcome: str, count: int = 1, at: datetime | None = None
) -> None:
    """Count session starts of a platform by outcome, in the hour they happened (UTC).

    Buffered per process and written as atomic increments (see ``outcomes``), so
    concurrent writers never lose counts and a start never waits for a commit.
    """
    outcomes.count(platform_id, hour_start(at or timezone.now()), outcome, count)
