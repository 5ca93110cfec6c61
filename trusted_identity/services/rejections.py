"""What enforcement is doing right now: an enforced platform's rejected starts and
distinct rejected users in the last hour and the last 24 hours, by reason and by app
version, for the "now" panel the settings page leads with once a platform enforces.

The starts and reasons come from the hourly counts (exact, to the hour); the users from
the hourly ``rejected:HH`` distinct-user sketches ``counting`` writes (exact up to
2,048 users, within about 1.6 % beyond); the app versions from the failure log, which
samples (client versions are counted by day only), so they are said to be a sample.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db.models import Count, Q, Sum
from django.utils import timezone

from .. import outcomes
from ..models import DetailCount, Dimension, DistinctUsers, FailureRecord, Outcome, OutcomeCount
from ..sketch import DistinctSketch
from .counting import REJECTED_KIND_PREFIX, hour_start

QUIET = "quiet"
REJECTING = "rejecting"


@dataclass
class Rejections:
    """Rejected starts of one platform since ``since`` (the start of an hour)."""

    since: datetime
    starts: int = 0
    users: int = 0
    #: Whether ``users`` is an exact count (a sketch past 2,048 users estimates).
    users_exact: bool = True
    #: Rejected starts by reason, most first.
    reasons: list[tuple[str, int]] = field(default_factory=list)
    #: App versions of the rejected starts the failure log kept (a sample), most first.
    versions: list[tuple[str, int]] = field(default_factory=list)
    #: Rejected starts the failure log kept in the window: what ``versions`` is of.
    logged: int = 0

    @property
    def top_reason(self) -> tuple[str, int] | None:
        return self.reasons[0] if self.reasons else None


@dataclass
class RejectionsNow:
    """An enforced platform's rejections in the last hour and the last 24 hours."""

    hour: Rejections
    day: Rejections

    @property
    def state(self) -> str:
        """``rejecting`` when a start was rejected in the last hour, else ``quiet``."""
        return REJECTING if self.hour.starts else QUIET


def _since(now: datetime) -> tuple[datetime, datetime]:
    """The starts of the last hour's and the last 24 hours' windows: whole hours, the
    current one included (the counts are hourly), so "the last hour" is at least 60
    minutes and says from when."""
    return hour_start(now - timedelta(hours=1)), hour_start(now - timedelta(hours=24))


def rejections_now(
    platform_ids: Sequence[int], now: datetime | None = None
) -> dict[int, RejectionsNow]:
    """Per platform, its rejections in the last hour and the last 24 hours. Four queries
    whatever the number of platforms."""
    outcomes.flush()  # what this process counted but has not written yet
    now = now or timezone.now()
    hour_since, day_since = _since(now)
    result = {
        pk: RejectionsNow(Rejections(hour_since), Rejections(day_since)) for pk in platform_ids
    }
    if not platform_ids:
        return result
    rejected = Outcome.REJECTED
    starts = (
        OutcomeCount.objects.filter(
            platform_id__in=platform_ids, outcome=rejected, hour__gte=day_since
        )
        .values("platform_id")
        .annotate(day=Sum("count"), hour=Sum("count", filter=Q(hour__gte=hour_since)))
        .order_by()
    )
    for row in starts:
        result[row["platform_id"]].day.starts = row["day"] or 0
        result[row["platform_id"]].hour.starts = row["hour"] or 0
    reasons: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in (
        DetailCount.objects.filter(
            platform_id__in=platform_ids,
            dimension=Dimension.REASON,
            outcome=rejected,
            hour__gte=day_since,
        )
        .values("platform_id", "value")
        .annotate(day=Sum("count"), hour=Sum("count", filter=Q(hour__gte=hour_since)))
        .order_by()
    ):
        reasons[row["platform_id"], "day"][row["value"]] += row["day"] or 0
        reasons[row["platform_id"], "hour"][row["value"]] += row["hour"] or 0
    versions: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in (
        FailureRecord.objects.filter(
            platform_id__in=platform_ids, outcome=rejected, at__gte=day_since
        )
        .values("platform_id", "app_version")
        .annotate(day=Count("id"), hour=Count("id", filter=Q(at__gte=hour_since)))
        .order_by()
    ):
        versions[row["platform_id"], "day"][row["app_version"]] += row["day"]
        versions[row["platform_id"], "hour"][row["app_version"]] += row["hour"]
    users = _rejected_users(platform_ids, hour_since, day_since)
    for pk, now_of in result.items():
        for name, window in (("hour", now_of.hour), ("day", now_of.day)):
            window.reasons = _most_first(reasons.get((pk, name), {}))
            window.versions = _most_first(versions.get((pk, name), {}))
            window.logged = sum(n for _, n in window.versions)
            sketch = users.get((pk, name))
            if sketch is not None:
                window.users, window.users_exact = sketch.count(), sketch.is_exact
    return result


def _most_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(((k, n) for k, n in counts.items() if n), key=lambda item: (-item[1], item[0]))


def _rejected_users(
    platform_ids: Sequence[int], hour_since: datetime, day_since: datetime
) -> dict[tuple[int, str], DistinctSketch]:
    """The distinct rejected users per platform since ``hour_since`` and since
    ``day_since``: the union of the hourly ``rejected:HH`` sketches. One query."""
    merged: dict[tuple[int, str], DistinctSketch] = {}
    rows = DistinctUsers.objects.filter(
        platform_id__in=platform_ids,
        kind__startswith=REJECTED_KIND_PREFIX,
        day__gte=day_since.astimezone(dt_timezone.utc).date(),
    ).values_list("platform_id", "day", "kind", "sketch")
    for platform_id, day, kind, data in rows.iterator():
        try:
            hour = datetime(
                day.year, day.month, day.day, int(kind.removeprefix(REJECTED_KIND_PREFIX)),
                tzinfo=dt_timezone.utc,
            )  # fmt: skip
            sketch = DistinctSketch.from_bytes(data)
        except ValueError:
            continue  # a damaged sketch (``figures`` logs those it reads) or an odd kind
        windows = ("hour", "day") if hour >= hour_since else ("day",) if hour >= day_since else ()
        for name in windows:
            known = merged.get((platform_id, name))
            if known is None:
                merged[platform_id, name] = known = DistinctSketch()
            known.merge(sketch)
    return merged
