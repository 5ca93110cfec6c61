"""Rollout diagnostics: why starts fail, which client versions still don't sign, which
secrets are still in use (``secret_use``), and the failure log (CONTRACT section 8).

Read from the counts ``counting`` writes: reasons, forms and secrets from their day
totals (:class:`DailyDetailTotal`, kept beside the hourly :class:`DetailCount` rows),
client versions per day, sampled failures. Every reader takes many
platforms at once, in a fixed number of queries, for the settings page and ``status``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

from django.db.models import Count, F, Max, OuterRef, Subquery, Sum, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from .. import outcomes
from ..models import (
    DailyDetailCount,
    DailyDetailTotal,
    Dimension,
    FailureRecord,
    Outcome,
    OutcomeCount,
    Platform,
    Space,
)
from .counting import NOT_SENT, hour_start
from .figures import (
    FORMS,
    AllPlatforms,
    Figures,
    figures_for,
    of_platforms,
    readiness_since,
    window_start,
)
from .forecast import OTHER, VersionRow
from .forecast import Forecast as Forecast  # the forecast is read from here too
from .forecast import forecast as forecast
from .forecast import version_key as version_key
from .secret_use import SecretUsage, secret_usage  # noqa: F401  (the page's and CLI's door)
from .spaces import get_space

#: Every reason an identified start can fail for, in the order the page lists them:
#: ``missing`` (no ``signed`` sent) and the reasons of an invalid signature.
REASONS = (
    "missing",
    "malformed",
    "no_match",
    "other_platform",
    "expired_secret",
    "token_malformed",
    "token_expired",
    "token_subject_mismatch",
    "token_too_long_lived",
    "form_not_allowed",
    "unknown_key",
    "key_expired",
)
#: Versions listed per platform; the rest are folded into "other".
VERSIONS_SHOWN = 10


def _detail_rows(
    platform_ids: Sequence[int], dimension: str, since: datetime
) -> list[dict[str, Any]]:
    """Summed counts of one dimension by platform, value and outcome since ``since``, to
    the day, from the midnight UTC the window starts on (``figures.window_start``, as
    the figures: one span for every figure): the day totals (``daytotals``) for reasons,
    forms, secrets and keys, the daily slots for client versions. One query."""
    outcomes.flush()
    day = window_start(since).astimezone(dt_timezone.utc).date()
    versions = dimension in (Dimension.APP_VERSION, Dimension.SDK_VERSION)
    model = DailyDetailCount if versions else DailyDetailTotal
    rows = of_platforms(model.objects.filter(dimension=dimension, day__gte=day), platform_ids)
    return list(rows.values("platform_id", "value", "outcome").annotate(n=Sum("count")).order_by())


def reasons_for(
    platform_ids: Sequence[int], since: datetime | None = None
) -> dict[int, dict[str, int]]:
    """Per platform, identified starts without a valid signature (missing, invalid and
    rejected ones) by reason, every reason listed (0 when none)."""
    result = {pk: dict.fromkeys(REASONS, 0) for pk in platform_ids}
    for row in _detail_rows(platform_ids, Dimension.REASON, since or readiness_since()):
        reasons = result.get(row["platform_id"])
        if reasons is not None:
            reasons[row["value"]] = reasons.get(row["value"], 0) + row["n"]
    return result


def forms_for(
    platform_ids: Sequence[int], since: datetime | None = None
) -> dict[int, dict[str, dict[str, int]]]:
    """Per platform, starts that sent ``signed`` by form (``figures.FORMS``: plain, token,
    public-key; each listed, 0 when none) and outcome."""
    result: dict[int, dict[str, dict[str, int]]] = {
        pk: {form: {"valid": 0, "invalid": 0, "rejected": 0} for form in FORMS}
        for pk in platform_ids
    }
    for row in _detail_rows(platform_ids, Dimension.FORM, since or readiness_since()):
        forms = result.get(row["platform_id"])
        if forms is None:
            continue
        by_outcome = forms.setdefault(row["value"], {"valid": 0, "invalid": 0, "rejected": 0})
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + row["n"]
    return result


def versions_for(
    platform_ids: Sequence[int],
    since: datetime | None = None,
    dimension: str = Dimension.APP_VERSION,
    shown: int = VERSIONS_SHOWN,
) -> dict[int, list[VersionRow]]:
    """Per platform, client versions (``X-App-Version`` or ``X-Sdk-Version``) with their
    starts by outcome, most-started first; beyond ``shown`` folded into ``other``.

    A day keeps its heaviest versions (``versionslots``): a version's counts are its
    starts since it got its slot, ``max_error`` how many more it may have had before
    (those are in ``other``), summed over the days."""
    since = since or readiness_since()
    by_platform: dict[int, dict[str, VersionRow]] = {pk: {} for pk in platform_ids}
    for row in _detail_rows(platform_ids, dimension, since):
        versions = by_platform.get(row["platform_id"])
        if versions is None:
            continue
        value = row["value"]
        version = versions.setdefault(value, VersionRow(None if value == NOT_SENT else value))
        version.counts[row["outcome"]] += row["n"]
    errors = (
        of_platforms(
            DailyDetailCount.objects.filter(
                dimension=dimension,
                day__gte=since.astimezone(dt_timezone.utc).date(),
                max_error__gt=0,
            ),
            platform_ids,
        )
        .values("platform_id", "value", "day")
        .annotate(e=Max("max_error"))
        .order_by()
    )
    for row in errors:  # the rows of a value and day share their error
        version = by_platform.get(row["platform_id"], {}).get(row["value"])
        if version is not None:
            version.max_error += row["e"]
    result: dict[int, list[VersionRow]] = {}
    for pk, versions in by_platform.items():
        other = versions.pop(OTHER, None)
        ordered = sorted(versions.values(), key=lambda v: (-v.starts, v.version or ""))
        kept, folded = ordered[:shown], ordered[shown:]
        if folded or other is not None:
            rest = other or VersionRow(OTHER)
            for version in folded:
                for outcome, n in version.counts.items():
                    rest.counts[outcome] += n
            kept.append(rest)
        result[pk] = kept
    return result


def recent_failures(platform: Platform | int, limit: int = 50) -> list[FailureRecord]:
    """The failure log of a platform, newest first (sampled and capped, see ``counting``)."""
    platform_id = platform if isinstance(platform, int) else platform.pk
    return recent_failures_for([platform_id], limit)[platform_id]


def recent_failures_for(
    platform_ids: Sequence[int], limit: int = 50
) -> dict[int, list[FailureRecord]]:
    """The newest ``limit`` failures of each platform, newest first, in one query."""
    outcomes.flush()
    result: dict[int, list[FailureRecord]] = {pk: [] for pk in platform_ids}
    if not platform_ids:
        return result
    ranked = (
        FailureRecord.objects.filter(platform_id__in=platform_ids)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("platform_id")],
                order_by=[F("at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=limit)
        .order_by("platform_id", "-at", "-id")
    )
    for record in ranked:
        result[record.platform_id].append(record)
    return result


#: The window of the failure log's footer: rows logged against failed starts counted.
FAILURE_WINDOW = timedelta(hours=24)
#: The outcomes the failure log samples (a valid start or a visitor is never logged).
LOGGED_OUTCOMES = (Outcome.INVALID, Outcome.MISSING, Outcome.REJECTED)


@dataclass(frozen=True)
class FailureCoverage:
    """How much of a platform's failed starts since ``since`` the sampled log holds."""

    since: datetime
    logged: int  # rows of the failure log
    failed: int  # invalid, missing and rejected starts counted


def failure_coverage(
    platform_ids: Sequence[int], window: timedelta = FAILURE_WINDOW
) -> dict[int, FailureCoverage]:
    """Per platform, the failure log's rows and the failed starts counted over the same
    window, from the start of the hour ``window`` ago (the counts are hourly): for an
    honest footer ("12 logged of 51 failed starts since ..."). One query."""
    outcomes.flush()
    since = hour_start(timezone.now() - window)
    failed = (
        OutcomeCount.objects.filter(
            platform_id=OuterRef("pk"), hour__gte=since, outcome__in=LOGGED_OUTCOMES
        )
        .order_by()
        .values("platform_id")
        .annotate(n=Sum("count"))
        .values("n")
    )
    logged = (
        FailureRecord.objects.filter(platform_id=OuterRef("pk"), at__gte=since)
        .order_by()
        .values("platform_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = (
        Platform.objects.filter(pk__in=platform_ids)
        .annotate(failed=Subquery(failed), logged=Subquery(logged))
        .values_list("pk", "logged", "failed")
    )
    found = {pk: FailureCoverage(since, logged or 0, failed or 0) for pk, logged, failed in rows}
    return {pk: found.get(pk, FailureCoverage(since, 0, 0)) for pk in platform_ids}


def failure_as_dict(record: FailureRecord) -> dict[str, Any]:
    """One failure as ``failures --json`` prints it (CONTRACT section 8)."""
    return {
        "at": record.at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z"),
        "outcome": record.outcome,
        "reason": record.reason or None,
        "user_id": record.user_id,
        "app_version": None if record.app_version == NOT_SENT else record.app_version,
        "sdk_version": None if record.sdk_version == NOT_SENT else record.sdk_version,
    }


def status_details(
    platform_ids: Sequence[int], since: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """What ``status --json`` adds per platform: reasons, forms and app versions."""
    reasons = reasons_for(platform_ids, since)
    forms = forms_for(platform_ids, since)
    versions = versions_for(platform_ids, since)
    return {
        pk: {
            "reasons": reasons[pk],
            "forms": forms[pk],
            "versions": [v.as_dict() for v in versions[pk]],
        }
        for pk in platform_ids
    }


#: What ``status`` says of each platform beside its figures, in this order.
STATUS_FIELDS = ("kind", "api_key", "enforced", "signature_form", "token_max_age", "key_source")


def status(
    space_slug: str | None = None, since: datetime | None = None, details: bool = True
) -> list[dict[str, Any]]:
    """Every space (or one) with its platforms' enforcement and figures: ``status --json``.

    With, per platform, the reasons of invalid starts, the forms and the app versions
    (CONTRACT section 8), unless ``details`` is false (plain ``status`` prints none of
    them, and at thousands of platforms they are a third of the time). The figures are
    over the readiness window, or since ``since`` (``status --since``, to the day).
    """
    spaces = Space.objects.order_by("slug")
    platforms = Platform.objects.order_by("space_id", "kind")
    if space_slug is not None:
        space = get_space(space_slug)
        spaces, platforms = spaces.filter(pk=space.pk), platforms.filter(space_id=space.pk)
    # Rows, not model instances: thousands of platforms are read here, and a plain
    # ``status`` of all spaces is otherwise mostly the ORM making objects.
    of_space: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for platform in platforms.values("space_id", "pk", *STATUS_FIELDS):
        of_space[platform.pop("space_id")].append(platform)
    ids = [platform["pk"] for rows in of_space.values() for platform in rows]
    if space_slug is None:  # every platform of every space: no list of ids in a query
        ids = AllPlatforms(ids)
    figures = figures_for(ids, since)
    extra = status_details(ids, since) if details else {pk: {} for pk in ids}
    return [
        {
            "slug": slug,
            "name": name,
            "platforms": [
                {
                    **{field: platform[field] for field in STATUS_FIELDS},
                    **figures.get(platform["pk"], Figures()).as_dict(),
                    **extra[platform["pk"]],
                }
                for platform in of_space.get(pk, ())
            ],
        }
        for pk, slug, name in spaces.values_list("pk", "slug", "name")
    ]
