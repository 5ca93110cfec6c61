"""Rollout figures and the readiness rule.

:class:`Figures` are the counts of one platform over a window and what they mean
(the valid share of identified starts, and whether it meets the threshold);
:func:`figures_for` reads them for many platforms in one query; :func:`status`
is ``status --json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import Min, Q, Sum
from django.utils import timezone

from .. import outcomes
from ..conf import app_settings
from ..models import DailyOutcomeTotal, DistinctUsers, Outcome, Platform
from ..sketch import DistinctSketch

logger = logging.getLogger("trusted_identity")

READY = "ready"
NOT_READY = "not_ready"
NOT_ENOUGH_STARTS = "not_enough_starts"

#: The forms of a signed start, as counted (``counting``): the secret's plain signature
#: and HS256 token, and a token signed with a public key.
FORMS = ("plain", "token", "public-key")
#: The forms whose valid users are counted apart (``DistinctUsers.form_kind``): a plain
#: signature's users are the valid ones without another form, not counted apart.
COUNTED_FORMS = ("token", "public-key")


@dataclass
class Figures:
    """Session-start counts of one platform over a window, and what they mean.

    The counts are of starts; ``distinct_valid`` and ``distinct_identified`` are of
    distinct user ids (exact up to 2,048, within about 1.6 % beyond: see ``sketch``),
    and the valid share and readiness are judged by them: replaying one valid pair
    many times adds starts, not users.
    """

    valid: int = 0
    invalid: int = 0
    missing: int = 0
    visitor: int = 0
    rejected: int = 0
    distinct_valid: int = 0
    distinct_identified: int = 0
    #: Distinct users with at least one identified start that was not valid: those
    #: enforcement would reject somewhere (an old app version on one device), even when
    #: another of their starts was valid.
    distinct_failing: int = 0
    #: The first counted hour of the window (any outcome, visitors too; to the day from
    #: the daily rows): how long the window was actually observed. None: nothing counted.
    first_counted: datetime | None = None
    #: Distinct valid users per form of :data:`COUNTED_FORMS` (``token``, ``public-key``):
    #: those with a valid start signed in it (:meth:`form_users`).
    distinct_forms: dict[str, int] = field(default_factory=dict)

    @property
    def identified(self) -> int:
        """Session starts that named a user (every outcome but visitor)."""
        return self.valid + self.invalid + self.missing + self.rejected

    @property
    def valid_share(self) -> float | None:
        """Share of distinct identified users with a valid signature; None when none."""
        if not self.distinct_identified:
            return None
        return min(1.0, self.distinct_valid / self.distinct_identified)

    @property
    def failing_share(self) -> float | None:
        """Share of distinct identified users with a start that was not valid."""
        if not self.distinct_identified:
            return None
        return min(1.0, self.distinct_failing / self.distinct_identified)

    @property
    def start_share(self) -> float | None:
        """Share of identified starts (not users) with a valid signature; None when none."""
        return self.valid / self.identified if self.identified else None

    def form_users(self, form: str) -> int:
        """Distinct valid users with a valid start signed in ``form`` (``token``,
        ``public-key``): what the readiness of accepting only that form reads. Two
        estimates past 2,048 users may cross: a form's users are valid users."""
        return min(self.distinct_valid, self.distinct_forms.get(form, 0))

    @property
    def users_by_form(self) -> dict[str, int]:
        """:meth:`form_users` of each of :data:`COUNTED_FORMS`."""
        return {form: self.form_users(form) for form in COUNTED_FORMS}

    def form_share(self, form: str) -> float | None:
        """:meth:`form_users` as a share of the distinct valid users; None when none."""
        return self.form_users(form) / self.distinct_valid if self.distinct_valid else None

    @property
    def enough_evidence(self) -> bool:
        """Whether the window holds enough distinct identified users to judge by."""
        return self.distinct_identified >= app_settings.READINESS_MIN_STARTS

    @property
    def readiness(self) -> str:
        """``ready``, ``not_ready`` or ``not_enough_starts``.

        Not ready: the share of users with a valid signature is below the threshold, or
        more than ``1 - threshold`` of the users also made starts that were not valid
        (enforcing would reject those starts: a user with an old app on a second device).

        Below the minimum sample of distinct users nothing can be told: a platform with
        a handful of users (or one user's starts replayed) is not "ready".
        """
        if not self.enough_evidence:
            return NOT_ENOUGH_STARTS
        share, failing = self.valid_share, self.failing_share
        threshold = app_settings.READINESS_THRESHOLD
        if share is None or share < threshold:
            return NOT_READY
        # Users whose other device still sends unsigned or wrongly signed starts would be
        # locked out there: a valid start of theirs elsewhere does not make them ready.
        if failing is not None and 1 - failing < threshold:
            return NOT_READY
        return READY

    def is_ready(self) -> bool:
        return self.readiness == READY

    @property
    def held_back_by_failing_users(self) -> bool:
        """Not ready although the share of users with a valid signature passes: too many
        of them also made starts that were not valid."""
        share = self.valid_share
        return (
            self.readiness == NOT_READY
            and share is not None
            and share >= app_settings.READINESS_THRESHOLD
        )

    def add(self, outcome: str, count: int) -> None:
        setattr(self, outcome, getattr(self, outcome) + count)

    def as_dict(self) -> dict[str, Any]:
        share, start_share = self.valid_share, self.start_share
        return {
            "valid": self.valid,
            "invalid": self.invalid,
            "missing": self.missing,
            "visitor": self.visitor,
            "rejected": self.rejected,
            "identified": self.identified,
            "valid_share": None if share is None else round(share, 6),
            "start_valid_share": None if start_share is None else round(start_share, 6),
            "distinct": {
                "valid": self.distinct_valid,
                "identified": self.distinct_identified,
                "failing": self.distinct_failing,
                "forms": self.users_by_form,
            },
            "ready": self.is_ready(),
            "readiness": self.readiness,
        }


def readiness_since(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now - app_settings.READINESS_WINDOW


def window_start(since: datetime | None = None) -> datetime:
    """Where a window reaching back to ``since`` (default: the readiness window) really
    begins: at midnight UTC of its first day. The distinct users and the client versions
    are counted by UTC day, so the starts are read from the same midnight: every figure
    of one window (users, starts, reasons, versions) is over the same span."""
    since = (since or readiness_since()).astimezone(dt_timezone.utc)
    return since.replace(hour=0, minute=0, second=0, microsecond=0)


class AllPlatforms(list):
    """The ids of every platform, read as such: the queries list none of them (``status``
    of all spaces: thousands of ids in an ``IN`` cost more to send than the rows read).
    A row of a platform made since the ids were read is left out."""


def of_platforms(queryset, platform_ids: Sequence[int]):
    """``queryset`` narrowed to ``platform_ids``, unless they are :class:`AllPlatforms`."""
    if isinstance(platform_ids, AllPlatforms):
        return queryset
    return queryset.filter(platform_id__in=platform_ids)


def figures_for(platform_ids: Iterable[int], since: datetime | None = None) -> dict[int, Figures]:
    """Figures per platform since ``since`` (default: the readiness window), from the
    midnight UTC that window starts on (:func:`window_start`).

    :class:`AllPlatforms` for every platform, read without listing their ids (``status``
    of all spaces). The counts are the day totals (``daytotals``: a row per platform,
    day and outcome, kept as the hourly counts are written), as far back as
    ``DAILY_RETENTION``; the first counted moment to the hour. One query, and one for
    the distinct users.
    """
    outcomes.flush()  # what this process counted but has not written yet
    since = window_start(since)
    ids = platform_ids if isinstance(platform_ids, AllPlatforms) else list(platform_ids)
    result = {pk: Figures() for pk in ids}
    if not ids:
        return result
    day = since.astimezone(dt_timezone.utc).date()
    totals = of_platforms(DailyOutcomeTotal.objects.filter(day__gte=day), ids)
    # A row per platform, each outcome's sum a column: thousands of platforms read as
    # few rows (and first hours) as there are platforms.
    sums = {outcome: Sum("count", filter=Q(outcome=outcome)) for outcome in Outcome.values}
    rows = (
        totals.values("platform_id")
        .annotate(first=Min("first_hour"), **sums)
        .values_list("platform_id", "first", *sums)
        .order_by()
    )
    for platform_id, first, *counts in rows:
        figures = result.get(platform_id)
        if figures is None:
            continue
        for outcome, count in zip(sums, counts, strict=True):
            if count:
                figures.add(outcome, count)
        figures.first_counted = first
    for (platform_id, kind), sketch in distinct_sketches(ids, since).items():
        figures = result.get(platform_id)
        if figures is None:
            continue
        if kind == DistinctUsers.VALID:
            figures.distinct_valid = sketch.count()
        elif kind == DistinctUsers.IDENTIFIED:
            figures.distinct_identified = sketch.count()
        elif kind == DistinctUsers.FAILING:
            figures.distinct_failing = sketch.count()
        elif kind in _FORM_KINDS:
            figures.distinct_forms[_FORM_KINDS[kind]] = sketch.count()
    return result


#: The ``DistinctUsers`` kind of each of :data:`COUNTED_FORMS`, to its form.
_FORM_KINDS = {DistinctUsers.form_kind(form): form for form in COUNTED_FORMS}


def form_users(platform_id: int, form: str, since: datetime | None = None) -> tuple[int, int]:
    """``(valid, of_form)`` since ``since`` (default: the readiness window), in distinct
    users: the platform's valid identified users, and how many of them had a valid start
    signed in ``form`` (any form but plain, e.g. token; counted by ``counting``). Replaying
    one user's signature many times adds no user. One query."""
    outcomes.flush()  # what this process counted but has not written yet
    sketches = distinct_sketches([platform_id], window_start(since))
    valid = sketches.get((platform_id, DistinctUsers.VALID))
    of_form = sketches.get((platform_id, DistinctUsers.form_kind(form)))
    valid_count = valid.count() if valid is not None else 0
    # Two estimates (past 2,048 users) may cross: a form's users are valid users.
    return valid_count, min(valid_count, of_form.count() if of_form is not None else 0)


def users_of_forms(platform_id: int, forms: Sequence[str], since: datetime | None = None) -> int:
    """Distinct valid users since ``since`` (default: the readiness window) with a valid
    start signed in any of ``forms`` (of :data:`COUNTED_FORMS`): the union of their
    sketches, so a user who signed in two forms counts once. One query."""
    outcomes.flush()
    kinds = {DistinctUsers.form_kind(form) for form in forms}
    union = DistinctSketch()
    for (_, kind), sketch in distinct_sketches([platform_id], window_start(since)).items():
        if kind in kinds:
            union.merge(sketch)
    return union.count()


def distinct_sketches(
    platform_ids: Sequence[int], since: datetime
) -> dict[tuple[int, str], DistinctSketch]:
    """The distinct users of each platform and kind since ``since``, to the UTC day: the
    union of the daily sketches (one query; a sketch that can't be read is skipped and
    logged)."""
    day = since.astimezone(dt_timezone.utc).date()
    rows = of_platforms(DistinctUsers.objects.filter(day__gte=day), platform_ids)
    merged: dict[tuple[int, str], DistinctSketch] = {}
    for platform_id, kind, data in rows.values_list("platform_id", "kind", "sketch").iterator():
        try:
            sketch = DistinctSketch.from_bytes(data)
        except ValueError:
            logger.error("Skipping damaged distinct users of platform #%s", platform_id)
            continue
        known = merged.get((platform_id, kind))
        if known is None:
            merged[platform_id, kind] = sketch
        else:
            known.merge(sketch)
    return merged


def readiness(platform: Platform) -> Figures:
    return figures_for([platform.pk])[platform.pk]


def daily_figures(
    platform_ids: Sequence[int], days: int = 7
) -> dict[int, list[tuple[date, Figures]]]:
    """Per platform, one ``(day, Figures)`` for each of the last ``days`` days (UTC), oldest
    first: the admin's small rollout chart."""
    today = timezone.now().date()
    day_list = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    series = {pk: {day: Figures() for day in day_list} for pk in platform_ids}
    if platform_ids:
        rows = DailyOutcomeTotal.objects.filter(
            platform_id__in=platform_ids, day__gte=day_list[0]
        ).values_list("platform_id", "day", "outcome", "count")
        for platform_id, day, outcome, count in rows:
            if day in series[platform_id]:
                series[platform_id][day].add(outcome, count)
    return {pk: list(days_map.items()) for pk, days_map in series.items()}
