"""Retention of the session-start counts: hourly rows folded into daily ones, then deleted.

The detail counts (reasons, forms, secrets) are folded the same way; client versions and
distinct users are daily from the start and deleted past ``DAILY_RETENTION``; the failure
log past ``FAILURE_LOG_RETENTION``.

Every figure the app shows lies within ``HOURLY_RETENTION`` (the readiness window and
the 7-day chart; a system check keeps it so). ``prune`` folds hourly rows of whole UTC
days older than that into :class:`DailyOutcomeCount` rows, kept for
``DAILY_RETENTION``, and deletes daily rows older than that. It works in batches, each
its own transaction that moves rows (locked, deleted, their sums added to the daily
rows with an upsert) all or nothing, so it is idempotent, can be interrupted and re-run,
and runs beside live traffic: a flush that writes into an hour being folded waits for
the batch, then adds its count to a new hourly row that the next batch or run folds in.
Counts are moved, never copied: each start is in exactly one table.

``prune`` also deletes the secrets whose grace ended more than
``EXPIRED_SECRET_RETENTION`` ago (``platform_secrets.delete_expired_secrets``), as
rotation does for the platforms it rotates.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import connections, router, transaction
from django.db.models import Min
from django.utils import timezone

from ..conf import app_settings
from ..models import (
    AlertSent,
    DailyDetailCount,
    DailyOutcomeCount,
    DetailCount,
    DistinctUsers,
    FailureRecord,
    OutcomeCount,
    PruneRun,
)
from .counting import REJECTED_DAYS_KEPT, REJECTED_KIND_PREFIX
from .platform_secrets import delete_expired_secrets

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


def _tables(connection) -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(OutcomeCount._meta.db_table), quote(DailyOutcomeCount._meta.db_table)


def _fold_batch(hour: datetime, batch_size: int) -> int:
    """Move up to ``batch_size`` hourly rows of one ``hour`` into daily rows, whole or
    not at all (one transaction). Returns how many rows moved.

    One hour at a time: the rows of an hour are found through the hour index (BRIN on
    PostgreSQL) and sorted among themselves only, so a batch costs the same whether a
    hundred or a hundred million rows wait.

    Set-based: on PostgreSQL one statement locks the rows, deletes them and adds their
    sums to the daily rows (``INSERT ... ON CONFLICT DO UPDATE``); elsewhere the rows are
    read, summed, added with one ``executemany`` upsert and deleted by key.
    """
    connection = connections[router.db_for_write(OutcomeCount)]
    hourly, daily = _tables(connection)
    upsert = (  # table names from the models, quoted; every value is a parameter
        f"INSERT INTO {daily} (platform_id, day, outcome, count) VALUES (%s, %s, %s, %s) "  # noqa: S608
        f"ON CONFLICT (platform_id, day, outcome) DO UPDATE SET count = {daily}.count + "
        "excluded.count"
    )
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH moved AS (DELETE FROM {hourly} WHERE (platform_id, hour, outcome) IN ("  # noqa: S608
                f"SELECT platform_id, hour, outcome FROM {hourly} WHERE hour >= %s AND hour < %s "
                "ORDER BY hour, platform_id, outcome LIMIT %s FOR UPDATE) "
                "RETURNING platform_id, hour, outcome, count), "
                "summed AS (SELECT platform_id, (hour AT TIME ZONE 'UTC')::date AS day, outcome, "
                "SUM(count) AS count, COUNT(*) AS n FROM moved GROUP BY 1, 2, 3), "
                f"added AS (INSERT INTO {daily} (platform_id, day, outcome, count) "
                "SELECT platform_id, day, outcome, count FROM summed "
                f"ON CONFLICT (platform_id, day, outcome) DO UPDATE SET count = {daily}.count + "
                "excluded.count) "
                "SELECT COALESCE(SUM(n), 0) FROM summed",
                [hour, hour + timedelta(hours=1), batch_size],
            )
            return int(cursor.fetchone()[0])
        rows = list(
            OutcomeCount.objects.select_for_update()
            .filter(hour__gte=hour, hour__lt=hour + timedelta(hours=1))
            .order_by("hour", "platform_id", "outcome")
            .values_list("platform_id", "hour", "outcome", "count")[:batch_size]
        )
        if not rows:
            return 0
        sums: Counter[tuple[int, date, str]] = Counter()
        for platform_id, hour, outcome, count in rows:
            sums[(platform_id, hour.astimezone(dt_timezone.utc).date(), outcome)] += count
        cursor.executemany(
            upsert,
            [
                (platform_id, connection.ops.adapt_datefield_value(day), outcome, count)
                for (platform_id, day, outcome), count in sums.items()
            ],
        )
        OutcomeCount.objects.filter(
            pk__in=[(platform_id, hour, outcome) for platform_id, hour, outcome, _ in rows]
        ).delete()
    return len(rows)


def _fold_detail_batch(hour: datetime, batch_size: int) -> int:
    """As :func:`_fold_batch`, for the detail counts (reasons, forms, secrets) of one
    hour: read and locked, summed by day, upserted into the daily detail rows, deleted;
    one transaction."""
    connection = connections[router.db_for_write(DetailCount)]
    daily = connection.ops.quote_name(DailyDetailCount._meta.db_table)
    upsert = (  # the table name from the model, quoted; every value is a parameter
        f"INSERT INTO {daily} (platform_id, day, dimension, value, outcome, count) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (platform_id, day, dimension, value, "
        f"outcome) DO UPDATE SET count = {daily}.count + excluded.count"
    )
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        rows = list(
            DetailCount.objects.select_for_update()
            .filter(hour__gte=hour, hour__lt=hour + timedelta(hours=1))
            .order_by("hour", "platform_id", "dimension", "value", "outcome")
            .values_list("platform_id", "hour", "dimension", "value", "outcome", "count")[
                :batch_size
            ]
        )
        if not rows:
            return 0
        sums: Counter[tuple[int, date, str, str, str]] = Counter()
        for platform_id, row_hour, dimension, value, outcome, count in rows:
            day = row_hour.astimezone(dt_timezone.utc).date()
            sums[(platform_id, day, dimension, value, outcome)] += count
        cursor.executemany(
            upsert,
            [
                (pid, connection.ops.adapt_datefield_value(day), dimension, value, outcome, n)
                for (pid, day, dimension, value, outcome), n in sums.items()
            ],
        )
        DetailCount.objects.filter(pk__in=[row[:5] for row in rows]).delete()
    return len(rows)


def _delete_in_batches(queryset, batch_size: int) -> int:
    """Delete what ``queryset`` selects, ``batch_size`` rows a transaction."""
    deleted = 0
    pk_name = queryset.model._meta.pk.name
    while True:
        with transaction.atomic():
            keys = list(queryset.values_list(pk_name, flat=True)[:batch_size])
            if not keys:
                return deleted
            count, _ = queryset.model.objects.filter(**{f"{pk_name}__in": keys}).delete()
            deleted += count


def _delete_composite_in_batches(queryset, fields: tuple[str, ...], batch_size: int) -> int:
    """As :func:`_delete_in_batches`, for a table whose primary key is ``fields``."""
    deleted = 0
    while True:
        with transaction.atomic():
            keys = list(queryset.values_list(*fields)[:batch_size])
            if not keys:
                return deleted
            count, _ = queryset.model.objects.filter(pk__in=keys).delete()
            deleted += count


def _oldest_hour_before(cutoff: datetime) -> datetime | None:
    """The oldest hour with rows before ``cutoff`` (one scan of what waits, through the
    hour index on PostgreSQL); a count written later into an older hour is found by the
    next run."""
    return OutcomeCount.objects.filter(hour__lt=cutoff).aggregate(oldest=Min("hour"))["oldest"]


def _delete_daily_batch(before: date, batch_size: int) -> int:
    connection = connections[router.db_for_write(DailyOutcomeCount)]
    _hourly, daily = _tables(connection)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {daily} WHERE (platform_id, day, outcome) IN ("  # noqa: S608
            f"SELECT platform_id, day, outcome FROM {daily} WHERE day < %s LIMIT %s)",
            [connection.ops.adapt_datefield_value(before), batch_size],
        )
        return cursor.rowcount


@dataclass
class PruneReport:
    hourly_rows_folded: int = 0  # outcome counts and detail counts
    daily_rows_deleted: int = 0  # daily outcome and detail counts, distinct-user days
    failures_deleted: int = 0  # failure log rows past FAILURE_LOG_RETENTION
    alerts_deleted: int = 0  # records of alerts sent, past ALERTS_KEPT
    seconds: float = 0.0
    #: Secrets whose grace ended more than EXPIRED_SECRET_RETENTION ago, deleted.
    expired_secrets_deleted: int = 0


#: How long the record of a sent alert is kept (it stops the same alert going out twice).
ALERTS_KEPT = timedelta(days=30)


def prune(batch_size: int = 10_000, now: datetime | None = None) -> PruneReport:
    """Fold hourly counts past ``HOURLY_RETENTION`` into daily rows and delete daily rows
    past ``DAILY_RETENTION``, in batches; delete secrets whose grace ended more than
    ``EXPIRED_SECRET_RETENTION`` ago. Safe to run at any time, and again."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = timezone.now()
    now = now or started
    run = PruneRun.objects.create(started_at=started)
    report = PruneReport()
    cutoff = hourly_cutoff(now)
    hour = _oldest_hour_before(cutoff)
    while hour is not None and hour < cutoff:  # hour by hour: an empty one costs one query
        while moved := _fold_batch(hour, batch_size):
            report.hourly_rows_folded += moved
        hour += timedelta(hours=1)
    hour = DetailCount.objects.filter(hour__lt=cutoff).aggregate(oldest=Min("hour"))["oldest"]
    while hour is not None and hour < cutoff:
        while moved := _fold_detail_batch(hour, batch_size):
            report.hourly_rows_folded += moved
        hour += timedelta(hours=1)
    before = daily_cutoff(now)
    while deleted := _delete_daily_batch(before, batch_size):
        report.daily_rows_deleted += deleted
    report.daily_rows_deleted += _delete_composite_in_batches(
        DailyDetailCount.objects.filter(day__lt=before),
        ("platform_id", "day", "dimension", "value", "outcome"),
        batch_size,
    )
    report.daily_rows_deleted += _delete_composite_in_batches(
        DistinctUsers.objects.filter(day__lt=before), ("platform_id", "day", "kind"), batch_size
    )
    report.daily_rows_deleted += _delete_composite_in_batches(
        DistinctUsers.objects.filter(  # the hourly rejected users: the "now" panel's only
            kind__startswith=REJECTED_KIND_PREFIX,
            day__lt=now.astimezone(dt_timezone.utc).date() - timedelta(days=REJECTED_DAYS_KEPT),
        ),
        ("platform_id", "day", "kind"),
        batch_size,
    )
    report.failures_deleted = _delete_in_batches(
        FailureRecord.objects.filter(at__lt=now - app_settings.FAILURE_LOG_RETENTION), batch_size
    )
    report.alerts_deleted = _delete_in_batches(
        AlertSent.objects.filter(sent_at__lt=now - ALERTS_KEPT), batch_size
    )
    report.expired_secrets_deleted = delete_expired_secrets(now)
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
