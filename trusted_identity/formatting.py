"""One way to show a share, a count and a moment, for the admin and the CLI alike.

``percent(0.97234)`` is ``97.2%``, ``number(1204)`` is ``1,204`` and
``moment(dt)`` is ``2026-11-26 14:05 UTC``; a missing value is ``—``. The admin's
templates use them as filters (``{% load trusted_identity_format %}``), the
``trusted_identity`` command's human-readable output calls them; JSON output keeps
its own machine formats (ISO 8601, shares as fractions). Plain Python, no Django.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

#: What a missing share or moment reads as.
NONE = "—"


def percent(share: float | None) -> str:
    """A share (0 to 1) as a percentage with one decimal: ``97.2%``; ``—`` for None."""
    if share is None:
        return NONE
    return f"{share * 100:.1f}%"


def number(count: int | None) -> str:
    """A count with thousands separators: ``3,310``; ``—`` for None."""
    return NONE if count is None else f"{count:,}"


def moment(value: datetime | None) -> str:
    """A moment in UTC to the minute: ``2026-11-26 14:05 UTC``; ``—`` for None.

    A naive datetime is taken as UTC (the app stores aware UTC datetimes).
    """
    if value is None:
        return NONE
    if value.tzinfo is not None:
        value = value.astimezone(dt_timezone.utc)
    return f"{value:%Y-%m-%d %H:%M} UTC"
