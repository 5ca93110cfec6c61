"""The counts per platform and UTC day, kept as the hourly counts are written: outcomes
(:class:`DailyOutcomeTotal`) and details (:class:`DailyDetailTotal`: reasons, forms,
secrets, keys), so a window's figures read a row per platform, day and key instead of
24 (``services.figures``, ``services.diagnostics``).

``countwrites.write_counts`` adds a batch's hourly counts here in the same transaction
as the hourly rows, so the two never disagree: a flush that arrives late (a process that
was cut off from the database, a count buffered across midnight) adds to the day its
hour belongs to, and moves the day's first hour back if it is earlier. ``prune`` folds
the hourly rows into daily ones without touching these, and deletes them after
``DAILY_RETENTION`` as it does the daily rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from datetime import timezone as dt_timezone

from .models import DailyDetailTotal, DailyOutcomeTotal
from .upserts import upsert_counts


def day_total_rows(counts: Iterable[tuple]) -> list[tuple]:
    """``(platform_id, day, *key, count, first_hour)`` per day of hourly counts given as
    ``(hour, platform_id, *key, count)`` (the key: an outcome, or a detail's dimension,
    value and outcome), in key order (writers lock rows in the same order, so two of
    them never wait on each other crosswise)."""
    totals: dict[tuple, list] = {}
    for hour, platform_id, *rest in counts:
        *key_rest, count = rest
        key = (platform_id, hour.astimezone(dt_timezone.utc).date(), *key_rest)
        found = totals.get(key)
        if found is None:
            totals[key] = [count, hour]
        else:
            found[0] += count
            found[1] = min(found[1], hour)
    return [(*key, count, first) for key, (count, first) in sorted(totals.items())]


def add_day_totals(counts: Iterable[tuple[datetime, int, str, int]]) -> int:
    """Add hourly counts ``(hour, platform_id, outcome, count)`` to their days' totals, in
    the caller's transaction. Returns the statements run."""
    return upsert_counts(
        DailyOutcomeTotal,
        ("platform_id", "day", "outcome"),
        day_total_rows(counts),
        least=("first_hour",),
    )


def add_detail_day_totals(details: Iterable[tuple]) -> int:
    """Add hourly detail counts ``(hour, platform_id, dimension, value, outcome, count)``
    to their days' totals, in the caller's transaction. Returns the statements run."""
    return upsert_counts(
        DailyDetailTotal,
        ("platform_id", "day", "dimension", "value", "outcome"),
        [row[:-1] for row in day_total_rows(details)],  # no first hour kept for details
    )
