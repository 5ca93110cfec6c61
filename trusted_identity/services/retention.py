"""Retention of the session-start counts: hourly rows folded into daily ones, then deleted.

Every figure the app shows lies within ``HOURLY_RETENTION`` (the readiness window and
the 7-day chart; a system check keeps it so). ``prune`` folds hourly rows of whole UTC
days older than that into :class:`DailyOutcomeCount` rows, kept for
``DAILY_RETENTION``, and deletes daily rows older than that. It works in batches, each
its own transaction that moves rows (read and locked, added to the daily rows, deleted)
all or nothing, so it is idempotent, can be interrupted and re-run, and runs beside live
traffic: a flush that writes into an hour being folded waits for the batch, then adds
its count to a new hourly row that the next batch or run folds in. Counts are moved,
never copied: each start is in exactly one table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ..conf import app_settings
from ..models import DailyOutcomeCount, OutcomeCount, PruneRun

#: Prune runs kept in the table (the latest tells whether retention is kept).
RUNS_KEPT = 100
#: How long without a prune run before the admin and ``check`` say so.
PRUNE_OVERDUE_AFTER = timedelta(days=2)


def hourly_cutoff(now: datetime | None = None) -> datetime:
    """Hourly rows before this moment (midnight UTC) are folded into daily rows."""
    moment = (now or timezone.now()) - app_settings.HOURLY_RETENTION
    return datetime.combine(moment.astimezone(dt_timezone.utc).date(), time(), dt_timezone.utc)


def daily_cutoff(now: datetime | None = None) -> date:
    """Daily rows before this day are deleted."""
    return (
        ((now or timezone.now()) - app_settings.DAILY_RETENTION).astimezone(dt_timezone.utc).date()
    )


def _add_daily(platform_id: int, day: date, outcome: str, count: int) -> None:
    rows = DailyOutcomeCount.objects.filter(platform_id=platform_id, day=day, outcome=outcome)
    if rows.update(count=F("count") + count):
        return
    try:
        with transaction.atomic():
            DailyOutcomeCount.objects.create(
                platform_id=platform_id, day=day, outcome=outcome, count=count
            )
    except IntegrityError:  # created meanwhile by a concurrent prune
        rows.update(count=F("count") + count)


def _fold_batch(cutoff: datetime, batch_size: int) -> int:
    """Move up to ``batch_size`` hourly rows before ``cutoff`` into daily rows: one
    transaction, so a batch is moved whole or not at all. Returns how many rows moved."""
    with transaction.atomic():
        rows = list(
            OutcomeCount.objects.select_for_update()
            .filter(hour__lt=cutoff)
            .order_by("hour", "platform_id", "outcome")
            .values_list("platform_id", "hour", "outcome", "count")[:batch_size]
        )
        if not rows:
            return 0
        sums: Counter[tuple[int, date, str]] = Counter()
        for platform_id, hour, outcome, count in rows:
            sums[(platform_id, hour.astimezone(dt_timezone.utc).date(), outcome)] += count
        for (platform_id, day, outcome), count in sums.items():
            _add_daily(platform_id, day, outcome, count)
        OutcomeCount.objects.filter(
            pk__in=[(platform_id, hour, outcome) for platform_id, hour, outcome, _ in rows]
        ).delete()
    return len(rows)


def _delete_daily_batch(before: date, batch_size: int) -> int:
    with transaction.atomic():
        keys = list(
            DailyOutcomeCount.objects.select_for_update()
            .filter(day__lt=before)
            .order_by("day", "platform_id", "outcome")
            .values_list("platform_id", "day", "outcome")[:batch_size]
        )
        if keys:
            DailyOutcomeCount.objects.filter(pk__in=keys).delete()
    return len(keys)


@dataclass
class PruneReport:
    hourly_rows_folded: int = 0
    daily_rows_deleted: int = 0
    seconds: float = 0.0


def prune(batch_size: int = 5000, now: datetime | None = None) -> PruneReport:
    """Fold hourly counts past ``HOURLY_RETENTION`` into daily rows and delete daily rows
    past ``DAILY_RETENTION``, in batches. Safe to run at any time, and again."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = timezone.now()
    now = now or started
    run = PruneRun.objects.create(started_at=started)
    report = PruneReport()
    cutoff = hourly_cutoff(now)
    while moved := _fold_batch(cutoff, batch_size):
        report.hourly_rows_folded += moved
    before = daily_cutoff(now)
    while deleted := _delete_daily_batch(before, batch_size):
        report.daily_rows_deleted += deleted
    finished = timezone.now()
    report.seconds = (finished - started).total_seconds()
    PruneRun.objects.filter(pk=run.pk).update(
        finished_at=finished,
        hourly_rows_folded=report.hourly_rows_folded,
        daily_rows_deleted=report.daily_rows_deleted,
    )
    stale_runs = PruneRun.objects.order_by("-started_at").values_list("pk", flat=True)[RUNS_KEPT:]
    PruneRun.objects.filter(pk__in=list(stale_runs)).delete()
    return report


@dataclass(frozen=True)
class RetentionState:
    last_run: datetime | None  # when the last finished prune started
    overdue: bool  # counts past the hourly retention wait, and prune has not run lately


def retention_state(now: datetime | None = None) -> RetentionState:
    """Whether ``prune`` keeps up: for the settings page's notice and ``check``."""
    now = now or timezone.now()
    last_run = (
        PruneRun.objects.filter(finished_at__isnull=False)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    if last_run is not None and now - last_run < PRUNE_OVERDUE_AFTER:
        return RetentionState(last_run, False)
    waiting = OutcomeCount.objects.filter(hour__lt=hourly_cutoff(now) - PRUNE_OVERDUE_AFTER)
    return RetentionState(last_run, waiting.exists())
