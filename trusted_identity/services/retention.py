"""Retention of the session-start counts: hourly rows folded into daily ones, then deleted.

The detail counts (reasons, forms, secrets) are folded the same way; client versions and
distinct users are daily from the start and deleted past ``DAILY_RETENTION``; the failure
log past ``FAILURE_LOG_RETENTION``.

Every figure the app shows lies within ``HOURLY_RETENTION`` (the readiness window and
the 7-day chart; a system check keeps it so). ``prune`` folds hourly rows of whole UTC
days older than that into :class:`DailyOutcomeCount` rows, kept for
``DAILY_RETENTION``, and deletes daily rows older than that. It works in batches of
whole platform-days (some platforms over a day, or every platform over some days,
about ``batch_size`` hourly rows), each one statement in its own transaction that
moves the rows (deleted, summed by day, the sums added to the daily rows with an
upsert) all or nothing: a daily row is written once per run, not once per hour. So it
is idempotent, can be interrupted and re-run, and runs beside live traffic: a flush
that writes into an hour being folded waits for the batch, then adds its count to a
new hourly row that the next batch or run folds in. Counts are moved, never copied:
each start is in exactly one table. On PostgreSQL the tables a run emptied most are
vacuumed after it, so a first prune of a large install leaves no dead rows behind.

The day totals the window's figures, reasons and forms read (``daytotals``) are neither
folded nor moved: they already hold every hour of their day; ``prune`` deletes them
past ``DAILY_RETENTION`` with the daily rows.

``prune`` also deletes the secrets whose grace ended more than
``EXPIRED_SECRET_RETENTION`` ago (``platform_secrets.delete_expired_secrets``), as
rotation does for the platforms it rotates.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Min
from django.utils import timezone

from ..conf import app_settings
from ..models import (
    AlertSent,
    DailyDetailCount,
    DailyDetailTotal,
    DailyOutcomeCount,
    DailyOutcomeTotal,
    DetailCount,
    DistinctUsers,
    FailureRecord,
    OutcomeCount,
    Platform,
    PruneRun,
)
from .counting import REJECTED_DAYS_KEPT, REJECTED_KIND_PREFIX
from .platform_secrets import delete_expired_secrets

logger = logging.getLogger("trusted_identity")

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


@dataclass(frozen=True)
class _Fold:
    """An hourly count table and the daily table its rows are folded into, by the
    columns beside the platform and the period (what a row counts)."""

    hourly: type
    daily: type
    columns: tuple[str, ...]


def _folds() -> tuple[_Fold, ...]:
    """The hourly tables prune folds: the outcome counts and the detail counts."""
    return (
        _Fold(OutcomeCount, DailyOutcomeCount, ("outcome",)),
        _Fold(DetailCount, DailyDetailCount, ("dimension", "value", "outcome")),
    )


#: At most this many platforms in one statement (SQLite's limit on parameters is far
#: above it; PostgreSQL gets them as one array).
MAX_PLATFORMS_PER_BATCH = 500
#: The first batch's guess of rows a platform has in a day (five outcomes an hour);
#: each batch then sizes the next by what it moved.
FIRST_GUESS_ROWS_PER_PLATFORM_DAY = 120


def _fold_statements(fold: _Fold, connection, platforms: int) -> list[str]:
    """The SQL that moves the hourly rows of some platforms and days into the daily
    table, each platform's day summed at once: one statement on PostgreSQL (the rows
    deleted, grouped by day and upserted in one), an upsert of the grouped sums then
    the delete on SQLite (whose writers are serialised, so nothing lands between)."""
    quote = connection.ops.quote_name
    hourly, daily = quote(fold.hourly._meta.db_table), quote(fold.daily._meta.db_table)
    columns = ", ".join(quote(c) for c in fold.columns)
    key = f"platform_id, day, {columns}"
    upsert = f"ON CONFLICT ({key}) DO UPDATE SET count = {daily}.count + excluded.count"
    if connection.vendor == "postgresql":
        return [  # table and column names from the models, quoted; values are parameters
            f"WITH moved AS (DELETE FROM {hourly} WHERE platform_id = ANY(%s) "  # noqa: S608
            "AND hour >= %s AND hour < %s "
            f"RETURNING platform_id, hour, {columns}, count), "
            f"summed AS (SELECT platform_id, (hour AT TIME ZONE 'UTC')::date AS day, {columns}, "
            f"SUM(count) AS count, COUNT(*) AS n FROM moved GROUP BY platform_id, day, {columns}), "
            f"added AS (INSERT INTO {daily} ({key}, count) SELECT {key}, count FROM summed "
            f"{upsert}) SELECT COALESCE(SUM(n), 0) FROM summed"
        ]
    where = f"platform_id IN ({', '.join(['%s'] * platforms)}) AND hour >= %s AND hour < %s"
    return [
        f"INSERT INTO {daily} ({key}, count) SELECT platform_id, date(hour) AS day, "  # noqa: S608
        f"{columns}, SUM(count) FROM {hourly} WHERE {where} "
        f"GROUP BY platform_id, date(hour), {columns} {upsert}",
        f"DELETE FROM {hourly} WHERE {where}",  # noqa: S608
    ]


def _fold_batch(fold: _Fold, platform_ids: list[int], first: date, days: int) -> int:
    """Move every hourly row of ``platform_ids`` in the UTC days ``first`` to
    ``first + days`` (excluded) into daily rows, in one transaction: each daily row is
    written once, with the sum of its day. Returns how many hourly rows moved.

    A flush writing into one of these rows meanwhile waits for the batch, finds the row
    gone and writes a new one, which the next run folds: a count is always in exactly
    one table."""
    connection = connections[router.db_for_write(fold.hourly)]
    since = datetime.combine(first, time(), dt_timezone.utc)
    bounds = [
        connection.ops.adapt_datetimefield_value(since),
        connection.ops.adapt_datetimefield_value(since + timedelta(days=days)),
    ]
    statements = _fold_statements(fold, connection, len(platform_ids))
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(statements[0], [platform_ids, *bounds])
            return int(cursor.fetchone()[0])
        upsert, delete = statements
        cursor.execute(upsert, [*platform_ids, *bounds])
        cursor.execute(delete, [*platform_ids, *bounds])
        return cursor.rowcount


def _fold_table(fold: _Fold, cutoff: datetime, batch_size: int) -> int:
    """Fold every hourly row of ``fold`` before ``cutoff`` (a UTC midnight), oldest days
    first, in batches of whole platform-days sized to about ``batch_size`` rows."""
    oldest = fold.hourly.objects.filter(hour__lt=cutoff).aggregate(oldest=Min("hour"))["oldest"]
    if oldest is None:
        return 0
    platform_ids = sorted(Platform.objects.values_list("pk", flat=True))
    if not platform_ids:
        return 0
    day, end = oldest.astimezone(dt_timezone.utc).date(), cutoff.date()
    per_platform_day = float(FIRST_GUESS_ROWS_PER_PLATFORM_DAY)
    capacity = 1  # platform-days in the next batch
    folded = 0
    while day < end:
        # As many platform-days as about batch_size rows take, at most twice the last
        # batch's: all the platforms over several days, or some platforms over one.
        wanted = max(1, min(2 * capacity, int(batch_size / max(per_platform_day, 1.0))))
        days = max(1, min((end - day).days, wanted // len(platform_ids)))
        chunk = max(1, min(MAX_PLATFORMS_PER_BATCH, wanted // days))
        start = 0
        while start < len(platform_ids):
            chunk_ids = platform_ids[start : start + chunk]
            moved = _fold_batch(fold, chunk_ids, day, days)
            folded += moved
            start += len(chunk_ids)
            capacity = len(chunk_ids) * days
            if moved:  # the next batch sized by what this one moved
                per_platform_day = moved / capacity
            wanted = max(1, min(2 * capacity, int(batch_size / max(per_platform_day, 1.0))))
            chunk = max(1, min(MAX_PLATFORMS_PER_BATCH, wanted // days))
        day += timedelta(days=days)
    return folded


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


def _delete_daily_batch(before: date, batch_size: int) -> int:
    connection = connections[router.db_for_write(DailyOutcomeCount)]
    daily = connection.ops.quote_name(DailyOutcomeCount._meta.db_table)
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
    #: The tables vacuumed after the run (PostgreSQL, many rows removed).
    vacuumed: list[str] = field(default_factory=list)


#: How long the record of a sent alert is kept (it stops the same alert going out twice).
ALERTS_KEPT = timedelta(days=30)
#: A table that lost at least this many rows in a run is vacuumed after it (PostgreSQL).
VACUUM_AFTER_ROWS = 10_000


def _vacuum(removed: dict[type, int]) -> list[str]:
    """``VACUUM (ANALYZE)`` the tables that lost ``VACUUM_AFTER_ROWS`` or more rows.

    A first prune of a large install deletes millions of hourly rows at once; until a
    vacuum the dead row versions stay in the table (every scan reads past them) and the
    freed space can't be reused, and autovacuum's default trigger (a fifth of the table
    dead) may come days later. Only on PostgreSQL, and only outside a transaction
    (``VACUUM`` can't run inside one): a caller's atomic block, such as a test's,
    leaves it to autovacuum. A role that may not vacuum is logged and skipped."""
    names: list[str] = []
    for model, rows in removed.items():
        connection = connections[router.db_for_write(model)]
        if rows < VACUUM_AFTER_ROWS or connection.vendor != "postgresql":
            continue
        if connection.in_atomic_block:
            continue
        table = model._meta.db_table
        try:
            with connection.cursor() as cursor:
                if connection.pg_version >= 150000:
                    # This connection's deletes reach the statistics first, so they can't
                    # land after the vacuum's count and report dead rows it removed.
                    cursor.execute("SELECT pg_stat_force_next_flush()")
                cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")
        except DatabaseError as exc:
            logger.warning("prune could not vacuum %s (%s); autovacuum will", table, exc)
            continue
        names.append(table)
    return names


def prune(
    batch_size: int = 10_000, now: datetime | None = None, *, vacuum: bool = True
) -> PruneReport:
    """Fold hourly counts past ``HOURLY_RETENTION`` into daily rows and delete daily rows
    past ``DAILY_RETENTION``, in batches; delete secrets whose grace ended more than
    ``EXPIRED_SECRET_RETENTION`` ago; then (``vacuum``) vacuum the tables it emptied
    most. Safe to run at any time, and again."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = timezone.now()
    now = now or started
    run = PruneRun.objects.create(started_at=started)
    report = PruneReport()
    removed: Counter[type] = Counter()
    cutoff = hourly_cutoff(now)
    for fold in _folds():
        removed[fold.hourly] = _fold_table(fold, cutoff, batch_size)
        report.hourly_rows_folded += removed[fold.hourly]
    before = daily_cutoff(now)
    while deleted := _delete_daily_batch(before, batch_size):
        removed[DailyOutcomeCount] += deleted
    removed[DailyDetailCount] += _delete_composite_in_batches(
        DailyDetailCount.objects.filter(day__lt=before),
        ("platform_id", "day", "dimension", "value", "outcome"),
        batch_size,
    )
    removed[DailyDetailTotal] += _delete_composite_in_batches(
        DailyDetailTotal.objects.filter(day__lt=before),
        ("platform_id", "day", "dimension", "value", "outcome"),
        batch_size,
    )
    removed[DailyOutcomeTotal] += _delete_composite_in_batches(
        DailyOutcomeTotal.objects.filter(day__lt=before),
        ("platform_id", "day", "outcome"),
        batch_size,
    )
    removed[DistinctUsers] += _delete_composite_in_batches(
        DistinctUsers.objects.filter(day__lt=before), ("platform_id", "day", "kind"), batch_size
    )
    removed[DistinctUsers] += _delete_composite_in_batches(
        DistinctUsers.objects.filter(  # the hourly rejected users: the "now" panel's only
            kind__startswith=REJECTED_KIND_PREFIX,
            day__lt=now.astimezone(dt_timezone.utc).date() - timedelta(days=REJECTED_DAYS_KEPT),
        ),
        ("platform_id", "day", "kind"),
        batch_size,
    )
    report.daily_rows_deleted = sum(
        removed[m]
        for m in (
            DailyOutcomeCount,
            DailyDetailCount,
            DailyOutcomeTotal,
            DailyDetailTotal,
            DistinctUsers,
        )
    )
    report.failures_deleted = removed[FailureRecord] = _delete_in_batches(
        FailureRecord.objects.filter(at__lt=now - app_settings.FAILURE_LOG_RETENTION), batch_size
    )
    report.alerts_deleted = _delete_in_batches(
        AlertSent.objects.filter(sent_at__lt=now - ALERTS_KEPT), batch_size
    )
    report.expired_secrets_deleted = delete_expired_secrets(now)
    if vacuum:
        report.vacuumed = _vacuum(removed)
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
