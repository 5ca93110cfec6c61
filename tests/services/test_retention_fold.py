"""``prune`` folds a platform's whole day at once: every total conserved, each daily row
written once (not once per hour), and on PostgreSQL no dead rows left behind."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_identity.models import (
    DailyDetailCount,
    DailyOutcomeCount,
    DetailCount,
    OutcomeCount,
)
from trusted_identity.services import retention

from ..factories import PlatformFactory, SpaceFactory

OUTCOMES = ("valid", "invalid", "missing", "rejected")
DETAILS = (("reason", "no_match"), ("reason", "malformed"), ("form", "token"), ("secret", "7"))
OLD_DAYS = 4  # whole UTC days past the hourly retention
RECENT_HOURS = 30  # within it: kept hourly


def _load(platforms: list, seed: int = 22) -> None:
    """Counts in every hour of the last OLD_DAYS days past the cutoff and the last
    RECENT_HOURS, with random gaps; detail counts beside them; some daily rows already
    there (a previous run's, and client versions, which are daily from the start)."""
    rng = random.Random(seed)
    cutoff = retention.hourly_cutoff()
    old_hours = [cutoff - timedelta(hours=h) for h in range(1, 24 * OLD_DAYS + 1)]
    now_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    recent_hours = [now_hour - timedelta(hours=h) for h in range(RECENT_HOURS)]
    hourly, details = [], []
    for platform in platforms:
        for hour in old_hours + recent_hours:
            for outcome in OUTCOMES:
                if rng.random() < 0.8:
                    hourly.append(OutcomeCount(platform=platform, hour=hour, outcome=outcome,
                                               count=rng.randint(1, 90)))  # fmt: skip
            for dimension, value in DETAILS:
                if rng.random() < 0.5:
                    details.append(DetailCount(platform=platform, hour=hour, dimension=dimension,
                                               value=value, outcome="invalid",
                                               count=rng.randint(1, 9)))  # fmt: skip
    OutcomeCount.objects.bulk_create(hourly)
    DetailCount.objects.bulk_create(details)
    first_old_day = (cutoff - timedelta(days=OLD_DAYS)).date()
    DailyOutcomeCount.objects.create(
        platform=platforms[0], day=first_old_day, outcome="valid", count=1000
    )
    DailyDetailCount.objects.create(platform=platforms[0], day=first_old_day, dimension="reason",
                                    value="no_match", outcome="invalid", count=50)  # fmt: skip
    DailyDetailCount.objects.create(platform=platforms[1], day=first_old_day,
                                    dimension="app_version", value="3.2.1", outcome="valid",
                                    count=77, max_error=3)  # fmt: skip


def _day(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        return moment.astimezone(dt_timezone.utc).date()
    return moment


def _totals() -> tuple[Counter, Counter]:
    """Starts per platform, day and outcome; and per platform, day, detail and outcome,
    from the hourly and the daily tables together."""
    outcomes: Counter = Counter()
    for model, period in ((OutcomeCount, "hour"), (DailyOutcomeCount, "day")):
        for pid, moment, outcome, count in model.objects.values_list(
            "platform_id", period, "outcome", "count"
        ):
            outcomes[pid, _day(moment), outcome] += count
    details: Counter = Counter()
    for model, period in ((DetailCount, "hour"), (DailyDetailCount, "day")):
        for pid, moment, dimension, value, outcome, count in model.objects.values_list(
            "platform_id", period, "dimension", "value", "outcome", "count"
        ):
            details[pid, _day(moment), dimension, value, outcome] += count
    return outcomes, details


@pytest.fixture
def platforms(db):
    return [PlatformFactory(space=SpaceFactory(slug=f"fold-{n}"), kind="ios") for n in range(5)]


@pytest.mark.parametrize("batch_size", [1, 37, 10_000])
def test_prune_conserves_every_total_per_platform_day_form_version_and_reason(
    platforms, batch_size
):
    _load(platforms)
    recent = set(OutcomeCount.objects.filter(hour__gte=retention.hourly_cutoff()).values_list(
        "platform_id", "hour", "outcome", "count"))  # fmt: skip
    before = _totals()

    report = retention.prune(batch_size=batch_size)

    assert _totals() == before  # moved, never lost, copied or moved to another day
    cutoff = retention.hourly_cutoff()
    assert not OutcomeCount.objects.filter(hour__lt=cutoff).exists()
    assert not DetailCount.objects.filter(hour__lt=cutoff).exists()
    assert set(OutcomeCount.objects.values_list("platform_id", "hour", "outcome", "count")) == (
        recent
    )  # the hours within the retention untouched
    version = DailyDetailCount.objects.get(dimension="app_version")
    assert (version.count, version.max_error) == (77, 3)
    assert report.hourly_rows_folded > 0
    assert retention.prune(batch_size=batch_size).hourly_rows_folded == 0
    assert _totals() == before


def test_each_platform_day_is_folded_by_one_statement_not_one_per_hour(platforms):
    _load(platforms)
    platform_days = {
        (pid, _day(hour))
        for pid, hour in OutcomeCount.objects.filter(
            hour__lt=retention.hourly_cutoff()
        ).values_list("platform_id", "hour")
    }
    assert len(platform_days) == len(platforms) * OLD_DAYS
    table = DailyOutcomeCount._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        retention.prune(batch_size=1)  # the smallest batch: one platform-day each
    folds = [q["sql"] for q in queries if f'INSERT INTO "{table}"' in q["sql"]]
    assert len(folds) == len(platform_days)  # not 24 per day
    with CaptureQueriesContext(connection) as queries:
        retention.prune()
    assert len([q for q in queries if f'INSERT INTO "{table}"' in q["sql"]]) == 0


def test_a_large_batch_folds_every_platform_over_several_days_at_once(platforms):
    _load(platforms)
    table = DailyOutcomeCount._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        report = retention.prune(batch_size=1_000_000)
    folds = [q for q in queries if f'INSERT INTO "{table}"' in q["sql"]]
    # Growing from one platform-day (it guesses nothing of the data), doubling.
    assert len(folds) <= 4
    assert report.hourly_rows_folded > 0


@pytest.mark.django_db(transaction=True)
def test_a_large_first_prune_leaves_no_dead_rows_on_postgresql(monkeypatch):
    """Checked with pgstattuple, which counts the dead row versions in the table's pages
    (pg_stat_user_tables.n_dead_tup is reported asynchronously)."""
    if connection.vendor != "postgresql":
        pytest.skip("VACUUM is PostgreSQL's; this runs in `make test-postgres`")
    monkeypatch.setattr(retention, "VACUUM_AFTER_ROWS", 1_000)
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
    platforms = [
        PlatformFactory(space=SpaceFactory(slug=f"dead-{n}"), kind="ios") for n in range(3)
    ]
    table = OutcomeCount._meta.db_table
    cutoff = retention.hourly_cutoff()

    def load() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (platform_id, hour, outcome, count) "
                "SELECT p, h, o, 3 FROM unnest(%s::bigint[]) p, "
                "generate_series(%s - interval '20 days', %s - interval '1 hour', "
                "interval '1 hour') h, unnest(ARRAY['valid','invalid','missing']) o "
                "ON CONFLICT DO NOTHING",
                [[p.pk for p in platforms], cutoff, cutoff],
            )

    def dead_rows() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT dead_tuple_count FROM pgstattuple(%s)", [table])
            return cursor.fetchone()[0]

    load()
    report = retention.prune(vacuum=False)
    assert report.hourly_rows_folded == 3 * 3 * 20 * 24
    assert report.vacuumed == []
    assert dead_rows() > 0  # what a large prune leaves without the vacuum
    load()
    report = retention.prune()
    assert table in report.vacuumed
    assert dead_rows() == 0
    assert sum(DailyOutcomeCount.objects.values_list("count", flat=True)) == 2 * 3 * 3 * 20 * 24 * 3


def test_prune_inside_a_transaction_leaves_the_vacuum_to_autovacuum(platforms, monkeypatch):
    monkeypatch.setattr(retention, "VACUUM_AFTER_ROWS", 1)
    _load(platforms)
    assert retention.prune().vacuumed == []  # a test's atomic block: VACUUM can't run
