"""Which secrets still verify, and whether the previous ones are still used: "may I end
the old secret's grace now?".

A previous secret's starts before its retirement were the current secret's and say
nothing about the clients; what counts is what it verified since it stopped being
current (``retired_at``): the starts and distinct users the flush counts
(``countwrites``/``secretwrites``, to the start) and its last use. Ending its grace is
called safe only once nothing has used it for ``SECRET_QUIET_PERIOD``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from .. import outcomes
from ..models import DetailCount, Dimension, PlatformSecret
from ..sketch import DistinctSketch
from .counting import hour_start
from .durations import describe_duration
from .platform_secrets import verifying_secrets

#: How long a previous secret must have verified nothing (since its retirement, or since
#: its last use after it) before ending its grace is called safe: clients that start
#: sessions rarely get that long to show they still sign with it.
SECRET_QUIET_PERIOD = timedelta(hours=1)

IN_USE = "in_use"  # verified a start since its retirement, within the quiet period
TOO_SOON = "too_soon"  # unused since its retirement, but retired less than the period ago
SAFE = "safe"  # nothing has used it for at least the quiet period


@dataclass(frozen=True)
class SecretUsage:
    """A secret that still verifies, and how much it is still used.

    For a previous secret what counts is its use since it stopped being current
    (``retired_at``): the starts it verified before were the current secret's, and say
    nothing about whether clients moved on.
    """

    secret_id: int
    created_at: datetime
    valid_until: datetime | None  # None: the current secret
    last_verified_at: datetime | None
    verified_last_24h: int
    retired_at: datetime | None = None
    starts_since_retired: int = 0
    users_since_retired: int = 0
    now: datetime = field(default_factory=timezone.now)

    @property
    def is_current(self) -> bool:
        return self.valid_until is None

    @property
    def last_used_since_retired(self) -> datetime | None:
        """When it last verified a start after its retirement (None: never since)."""
        if self.retired_at is None or not self.starts_since_retired:
            return None
        last = self.last_verified_at
        return last if last is not None and last >= self.retired_at else self.retired_at

    @property
    def quiet_since(self) -> datetime | None:
        """Since when nothing has used it: its last use since its retirement, or its
        retirement. None for the current secret."""
        if self.retired_at is None:
            return None
        return self.last_used_since_retired or self.retired_at

    @property
    def quiet_for(self) -> timedelta | None:
        since = self.quiet_since
        return None if since is None else max(timedelta(0), self.now - since)

    @property
    def state(self) -> str:
        """``current``, or for a previous secret ``in_use``, ``too_soon`` or ``safe``."""
        quiet = self.quiet_for
        if self.is_current or quiet is None:
            return "current"
        if quiet >= SECRET_QUIET_PERIOD:
            return SAFE
        return IN_USE if self.starts_since_retired else TOO_SOON

    @property
    def safe_to_end(self) -> bool:
        """A previous secret nothing has used for at least ``SECRET_QUIET_PERIOD``."""
        return self.state == SAFE

    @property
    def quiet_period(self) -> str:
        return describe_duration(SECRET_QUIET_PERIOD)

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            if value is None:
                return None
            return value.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")

        return {
            "secret": "current" if self.is_current else "previous",
            "created_at": when(self.created_at),
            "valid_until": when(self.valid_until),
            "retired_at": when(self.retired_at),
            "last_verified_at": when(self.last_verified_at),
            "verified_last_24h": self.verified_last_24h,
            "starts_since_retired": self.starts_since_retired,
            "users_since_retired": self.users_since_retired,
            "state": self.state,
        }


def secret_usage(platform_ids: Sequence[int]) -> dict[int, list[SecretUsage]]:
    """Per platform, every secret that still verifies with its use in the last 24 hours
    (from the hourly counts, to the hour), when it last verified a start, and for a
    previous secret its starts and distinct users since its retirement (counted by the
    flush, ``countwrites``, to the start). Two queries."""
    outcomes.flush()
    now = timezone.now()
    verifying = verifying_secrets(platform_ids)
    ids = [s.secret_id for secrets in verifying.values() for s in secrets]
    stored = {
        pk: (last, retired, starts, users)
        for pk, last, retired, starts, users in PlatformSecret.objects.filter(
            pk__in=ids
        ).values_list(
            "pk", "last_verified_at", "retired_at", "starts_since_retired", "users_since_retired"
        )
    }
    counts: dict[str, int] = defaultdict(int)
    rows = (
        DetailCount.objects.filter(
            platform_id__in=platform_ids,
            dimension=Dimension.SECRET,
            value__in=[str(pk) for pk in ids],
            hour__gte=hour_start(now - timedelta(hours=24)),
        )
        .values("value")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for row in rows:
        counts[row["value"]] += row["n"]

    def usage(secret: Any) -> SecretUsage:
        last, retired, starts, users = stored.get(secret.secret_id, (None, None, 0, b""))
        try:
            distinct = DistinctSketch.from_bytes(users).count()
        except ValueError:
            distinct = 0
        return SecretUsage(
            secret.secret_id,
            secret.created_at,
            secret.valid_until,
            last,
            counts[str(secret.secret_id)],
            retired_at=None if secret.is_current else retired,
            starts_since_retired=starts,
            users_since_retired=min(distinct, starts),
            now=now,
        )

    return {pk: [usage(s) for s in secrets] for pk, secrets in verifying.items()}


def use_since_retired(secret_id: int) -> tuple[int, int]:
    """``(starts, distinct users)`` a secret verified since its retirement, as written
    (no flush: the alerts read it from the flush's own receiver). One query."""
    row = (
        PlatformSecret.objects.filter(pk=secret_id)
        .values_list("starts_since_retired", "users_since_retired")
        .first()
    )
    if row is None:
        return 0, 0
    try:
        users = DistinctSketch.from_bytes(row[1]).count()
    except ValueError:
        users = 0
    return row[0], min(users, row[0])
