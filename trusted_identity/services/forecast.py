"""The enforcement forecast: what turning enforcement on now would reject, in starts
and users a day, over the span of the window actually observed, and from which client
versions; or why it can't tell yet (too young, too few users).

Pure arithmetic on what ``figures`` and ``diagnostics`` read: the settings page and the
enforcement confirmation page word the same :class:`Forecast`. :class:`VersionRow` (a
client version's starts by outcome) lives here because the forecast reads it;
``diagnostics.versions_for`` builds them. ``diagnostics`` re-exports both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from ..conf import app_settings
from ..formatting import number, percent
from ..models import Outcome
from . import durations
from .figures import Figures, readiness_since, window_start

OTHER = "other"
_NUMBERS = re.compile(r"\d+")


@dataclass
class VersionRow:
    """Starts of one client version by outcome (``version`` None: the header was not sent)."""

    version: str | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Outcome.values, 0))
    #: How many more starts this version may have had than counted: those before it got
    #: a slot of its day (``versionslots``: kept by weight), counted in ``other``. 0 when
    #: the counts are exact (always for ``other``).
    max_error: int = 0

    @property
    def starts(self) -> int:
        return sum(self.counts.values())

    @property
    def identified(self) -> int:
        return self.starts - self.counts[Outcome.VISITOR]

    @property
    def failing(self) -> int:
        """Identified starts without a valid signature (what enforcement rejects)."""
        return self.identified - self.counts[Outcome.VALID]

    @property
    def valid_share(self) -> float | None:
        return self.counts[Outcome.VALID] / self.identified if self.identified else None

    def as_dict(self, key: str = "app_version") -> dict[str, Any]:
        share = self.valid_share
        return {
            key: self.version,
            **{outcome: self.counts[outcome] for outcome in Outcome.values},
            "valid_share": None if share is None else round(share, 6),
            "max_error": self.max_error,
        }


def version_key(version: str | None) -> tuple[int, ...] | None:
    """A version's numbers for ordering (``3.10.1`` after ``3.9``); None when it has none."""
    if not version or version in (OTHER, "unknown"):
        return None
    numbers = _NUMBERS.findall(version)
    return tuple(int(n) for n in numbers[:6]) if numbers else None


#: Below this span of observed starts a forecast per day would extrapolate a few
#: hours' traffic (night or day) to a day: it says so instead.
FORECAST_MIN_OBSERVED = timedelta(hours=24)

#: A forecast's verdicts: one per day, or why it can't tell.
ESTIMATE = "estimate"
NO_STARTS = "no_starts"  # no identified start in the window
TOO_YOUNG = "too_young"  # observed for less than FORECAST_MIN_OBSERVED
TOO_THIN = "too_thin"  # fewer distinct identified users than READINESS_MIN_STARTS


@dataclass(frozen=True)
class Forecast:
    """What turning enforcement on now would do, over the span actually observed.

    ``failing_starts`` and ``failing_users`` are over ``observed`` (from the platform's
    first counted hour in the window, at least an hour); ``starts_per_day`` and
    ``users_per_day`` divide them by it and are None unless the verdict is
    ``estimate`` (``users_per_day`` is an average: the same user on two days counts
    once in ``failing_users``). ``failing_users`` are the identified users with a start
    without a valid signature: those enforcement would reject, on one device or all.
    """

    verdict: str  # ESTIMATE, NO_STARTS, TOO_YOUNG or TOO_THIN
    observed: timedelta
    observed_since: datetime | None
    failing_starts: int
    failing_users: int
    identified_users: int
    min_users: int
    starts_per_day: float | None
    users_per_day: float | None
    old_versions_share: float | None  # share of the failing starts from versions up to ``up_to``
    up_to: str | None  # the newest version whose starts mostly fail

    @property
    def can_tell(self) -> bool:
        return self.verdict == ESTIMATE

    def observed_words(self) -> str:
        """``3 days``, ``5 hours``: the span observed, rounded down to what it holds."""
        return durations.describe_duration(observed_floor(self.observed))

    def sentence(self) -> str:
        """The forecast in words, never "about 0" of anything with a share of it."""
        span = self.observed_words()
        if self.verdict == NO_STARTS:
            return f"Nothing to forecast: no identified start in the {span} observed."
        failing = f"{number(self.failing_starts)} {_plural(self.failing_starts, 'start')}"
        old = ""
        if self.failing_starts and self.up_to is not None and self.old_versions_share is not None:
            old = f", {percent(self.old_versions_share)} of them from app versions ≤ {self.up_to}"
        locked = (
            f"{number(self.failing_users)} {_plural(self.failing_users, 'user')} made starts "
            "without a valid signature"
        )
        if self.verdict in (TOO_YOUNG, TOO_THIN):
            why = (
                f"Too early to forecast a day: only {span} observed (at least "
                f"{durations.describe_duration(FORECAST_MIN_OBSERVED)} needed)"
                if self.verdict == TOO_YOUNG
                else f"Too few users to forecast: {number(self.identified_users)} of the "
                f"{number(self.min_users)} needed"
            )
            return (
                f"{why}. In the {span} observed: {failing} without a valid signature{old}; "
                f"{locked}."
            )
        if not self.failing_starts:
            return f"Enforcing now would have rejected no start in the {span} observed."
        per_day = self.starts_per_day or 0.0
        if per_day < 1:
            rate = "fewer than 1 start a day"
        else:
            rate = f"about {number(round(per_day))} {_plural(round(per_day), 'start')} a day"
        return (
            f"Enforcing now would reject {rate} ({failing} in the {span} observed{old}); "
            f"{locked} and would be rejected (on an old app version, or everywhere)."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "observed_seconds": int(self.observed.total_seconds()),
            "failing_starts": self.failing_starts,
            "failing_users": self.failing_users,
            "starts_per_day": self.starts_per_day,
            "users_per_day": self.users_per_day,
            "old_versions_share": self.old_versions_share,
            "up_to": self.up_to,
        }


def _plural(n: int, word: str) -> str:
    return word if n == 1 else f"{word}s"


def observed_floor(span: timedelta) -> timedelta:
    """A span as the forecast says it: whole days past a day, else whole hours."""
    if span >= timedelta(days=1):
        return timedelta(days=span // timedelta(days=1))
    return timedelta(hours=max(1, span // timedelta(hours=1)))


def forecast(
    figures: Figures,
    versions: list[VersionRow],
    since: datetime | None = None,
    now: datetime | None = None,
) -> Forecast:
    """How many identified starts (and users) a day enforcement would reject: the
    invalid, missing and rejected starts of the window, per day of the span actually
    observed (from the platform's first counted hour in the window, at least an
    hour, not the window's length), and how many of those come from old app versions
    (up to the newest version whose own starts mostly fail). Says it can't tell when
    fewer than ``FORECAST_MIN_OBSERVED`` were observed or the window holds fewer than
    ``READINESS_MIN_STARTS`` distinct identified users."""
    now = now or timezone.now()
    start = window_start(since or readiness_since(now))  # the window as of ``now``
    first = figures.first_counted
    observed_since = max(start, first) if first is not None else None
    observed = max(now - (observed_since or now), timedelta(hours=1))
    failing = figures.invalid + figures.missing + figures.rejected
    failing_users = figures.distinct_failing  # users enforcement would reject somewhere
    minimum = app_settings.READINESS_MIN_STARTS
    if not figures.identified:
        verdict = NO_STARTS
    elif observed < FORECAST_MIN_OBSERVED:
        verdict = TOO_YOUNG
    elif figures.distinct_identified < minimum:
        verdict = TOO_THIN
    else:
        verdict = ESTIMATE
    days = observed / timedelta(days=1)
    estimate = verdict == ESTIMATE
    share, up_to = _old_versions(versions, failing) if failing else (None, None)
    return Forecast(
        verdict=verdict,
        observed=observed,
        observed_since=observed_since,
        failing_starts=failing,
        failing_users=failing_users,
        identified_users=figures.distinct_identified,
        min_users=minimum,
        starts_per_day=failing / days if estimate else None,
        users_per_day=failing_users / days if estimate else None,
        old_versions_share=share,
        up_to=up_to,
    )


def _old_versions(versions: list[VersionRow], failing: int) -> tuple[float | None, str | None]:
    """The share of failing starts from versions up to the newest whose starts mostly
    fail, and that version; (None, None) when no version mostly fails."""
    old = [v for v in versions if version_key(v.version) is not None]
    mostly_failing = [v for v in old if v.failing > v.counts[Outcome.VALID]]
    if not mostly_failing:
        return None, None
    newest = max(mostly_failing, key=lambda v: version_key(v.version) or ())
    limit = version_key(newest.version) or ()
    from_old = sum(v.failing for v in old if (version_key(v.version) or ()) <= limit)
    all_failing = sum(v.failing for v in versions) or failing
    return min(1.0, from_old / all_failing), newest.version
