"""Retention of the counts: prune folds old hours into days, exactly, and deletes old days."""

import threading
from datetime import datetime, time, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.core.checks import run_checks
from django.db import connection, connections
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_identity.countwrites import add_count
from trusted_identity.models import DailyOutcomeCount, OutcomeCount, PruneRun
from trusted_identity.services import diagnostics, figures, retention
from trusted_identity.services.retention import hourly_cutoff

from ..factories import OutcomeCountFactory, PlatformFactory, SpaceFactory

HOUR = timedelta(hours=1)


def _hours_ago(hours: float) -> datetime:
    return (timezone.now() - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


def _total(model=None, **filters) -> int:
    models = [model] if model else [OutcomeCount, DailyOutcomeCount]
    return sum(m.objects.filter(**filters).aggregate(n=Sum("count"))["n"] or 0 for m in models)


def test_prune_folds_old_hours_into_days_and_keeps_every_figure(platform):
    old_day = (timezone.now() - timedelta(days=20)).astimezone(dt_timezone.utc).date()
    first = datetime.combine(old_day, time(3), dt_timezone.utc)
    for hour, outcome, count in [
        (first, "valid", 5),
        (first + HOUR, "valid", 7),
        (first + 2 * HOUR, "invalid", 2),
        (first - timedelta(days=1), "missing", 4),  # another day
    ]:
        OutcomeCountFactory(platform=platform, hour=hour, outcome=outcome, count=count)
    recent = OutcomeCountFactory(platform=platform, hour=_hours_ago(3), outcome="valid", count=9)
    before = figures.readiness(platform).as_dict()
    everything = _total()

    report = retention.prune(batch_size=2)  # several batches

    assert report.hourly_rows_folded == 4
    assert set(OutcomeCount.objects.values_list("hour", flat=True)) == {recent.hour}
    daily = {
        (row.day, row.outcome): row.count
        for row in DailyOutcomeCount.objects.filter(platform=platform)
    }
    assert daily == {
        (old_day, "valid"): 12,
        (old_day, "invalid"): 2,
        (old_day - timedelta(days=1), "missing"): 4,
    }
    assert _total() == everything  # moved, not copied or lost
    assert figures.readiness(platform).as_dict() == before
    run = PruneRun.objects.latest()
    assert run.finished_at is not None and run.hourly_rows_folded == 4

    again = retention.prune()
    assert (again.hourly_rows_folded, again.daily_rows_deleted) == (0, 0)
    assert _total() == everything


def test_prune_deletes_days_past_the_daily_retention(platform, settings):
    today = timezone.now().astimezone(dt_timezone.utc).date()
    DailyOutcomeCount.objects.create(
        platform=platform, day=today - timedelta(days=401), outcome="valid", count=3
    )
    kept = DailyOutcomeCount.objects.create(
        platform=platform, day=today - timedelta(days=300), outcome="valid", count=4
    )
    report = retention.prune()
    assert report.daily_rows_deleted == 1
    assert list(DailyOutcomeCount.objects.all()) == [kept]


def test_figures_past_the_hourly_retention_come_from_the_daily_rows(platform):
    OutcomeCountFactory(platform=platform, hour=_hours_ago(24 * 30), outcome="valid", count=6)
    OutcomeCountFactory(platform=platform, hour=_hours_ago(2), outcome="missing", count=1)
    since = timezone.now() - timedelta(days=60)
    before = figures.figures_for([platform.pk], since)[platform.pk]
    retention.prune()
    after = figures.figures_for([platform.pk], since)[platform.pk]
    assert (after.valid, after.missing) == (before.valid, before.missing) == (6, 1)
    assert figures.readiness(platform).valid == 0  # the readiness window is unchanged


def test_the_all_spaces_status_lists_no_platform_ids(db):
    platforms = [PlatformFactory(space=SpaceFactory(slug=f"s{n}"), kind="ios") for n in range(30)]
    for platform in platforms:
        OutcomeCountFactory(platform=platform, outcome="valid", count=platform.pk)
    with CaptureQueriesContext(connection) as queries:
        result = diagnostics.status()
    figures_sql = [q["sql"] for q in queries if "dailyoutcometotal" in q["sql"]]
    assert len(figures_sql) == 1 and " IN (" not in figures_sql[0]
    assert not [q for q in queries if '_outcomecount"' in q["sql"]]  # no hourly row read
    # Nor do the reasons, forms and versions list the platforms: they are all of them.
    assert not [q for q in queries if '"platform_id" IN (' in q["sql"]]
    valid = {s["slug"]: s["platforms"][0]["valid"] for s in result}
    assert valid == {p.space.slug: p.pk for p in platforms}


def test_a_flush_into_an_hour_being_folded_loses_nothing(platform):
    """A count written into an hour after prune moved it lands in a new hourly row, which
    the next run folds in: the total stays exact."""
    old = _hours_ago(24 * 20)
    OutcomeCountFactory(platform=platform, hour=old, outcome="valid", count=10)
    retention.prune()
    add_count(
        OutcomeCount, {"platform_id": platform.pk, "hour": old, "outcome": "valid"}, 3
    )  # a late flush of that hour
    assert _total(OutcomeCount) == 3
    retention.prune()
    assert _total(OutcomeCount) == 0
    assert _total(DailyOutcomeCount) == 13


@pytest.mark.django_db(transaction=True)
def test_prune_beside_concurrent_flushes_keeps_every_count():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this runs in `make test-postgres`")
    platform = PlatformFactory(space=SpaceFactory(slug="busy"), kind="web")
    hours = [_hours_ago(24 * 20 + n) for n in range(6)]
    written = []
    errors = []

    def flusher(seed: int) -> None:
        try:
            for n in range(60):
                add_count(
                    OutcomeCount,
                    {"platform_id": platform.pk, "hour": hours[(seed + n) % 6], "outcome": "valid"},
                    1,
                )
                written.append(1)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    def pruner() -> None:
        try:
            for _ in range(10):
                retention.prune(batch_size=2)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flusher, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=pruner))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    retention.prune()
    assert _total(OutcomeCount) == 0
    assert _total(DailyOutcomeCount) == len(written) == 180


def test_retention_checks(settings, platform):
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "HOURLY_RETENTION": timedelta(days=3),
        "DAILY_RETENTION": timedelta(days=2),
    }
    ids = {message.id for message in run_checks()}
    assert {"trusted_identity.E010", "trusted_identity.E011"} <= ids

    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "HOURLY_RETENTION": timedelta(days=14),
        "DAILY_RETENTION": timedelta(days=400),
    }
    assert "trusted_identity.W010" not in {m.id for m in run_checks(databases=["default"])}
    OutcomeCountFactory(platform=platform, hour=_hours_ago(24 * 30), outcome="valid")
    assert retention.retention_state().overdue
    assert "trusted_identity.W010" in {m.id for m in run_checks(databases=["default"])}
    retention.prune()
    assert not retention.retention_state().overdue
    assert "trusted_identity.W010" not in {m.id for m in run_checks(databases=["default"])}


def test_the_hourly_cutoff_is_a_utc_midnight_at_least_the_retention_ago(settings):
    cutoff = hourly_cutoff()
    assert (cutoff.hour, cutoff.minute, cutoff.tzinfo) == (0, 0, dt_timezone.utc)
    age = timezone.now() - cutoff
    assert timedelta(days=14) <= age < timedelta(days=15)
