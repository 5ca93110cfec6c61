"""The day totals the window's figures, reasons and forms read
(``trusted_identity.daytotals``): written with the hourly counts in one transaction,
late flushes and concurrent writers included; what is read from them equals the hourly
rows' sums; prune's fold leaves them alone and its retention deletes them; the
migration fills them from the counts already written."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.db import connection, connections
from django.db.models import Min, Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_identity import countwrites
from trusted_identity.countwrites import CountBatch
from trusted_identity.daytotals import day_total_rows
from trusted_identity.models import (
    DailyDetailTotal,
    DailyOutcomeTotal,
    DetailCount,
    OutcomeCount,
)
from trusted_identity.services import diagnostics, figures, retention

from .factories import PlatformFactory, SpaceFactory
from .test_migrations import APP, _latest, _migrate

OUTCOMES = ["valid", "invalid", "missing", "visitor", "rejected"]


def this_hour() -> datetime:
    return timezone.now().astimezone(dt_timezone.utc).replace(minute=0, second=0, microsecond=0)


def write(counts: dict[tuple[int, datetime, str], int], details: dict | None = None) -> None:
    """As a flush writes: ``countwrites.write_counts`` of a batch of hourly counts, and
    of detail counts keyed ``(platform_id, hour, dimension, value, outcome)``."""
    batch = CountBatch()
    for key, n in counts.items():
        batch.add(key, n)
    batch.details.details.update(details or {})
    countwrites.write_counts(batch)


def detail_totals() -> dict[tuple, int]:
    return {
        (t.platform_id, t.day, t.dimension, t.value, t.outcome): t.count
        for t in DailyDetailTotal.objects.all()
    }


def detail_totals_from_hourly_rows() -> dict[tuple, int]:
    found: Counter = Counter()
    for row in DetailCount.objects.all():
        day = row.hour.astimezone(dt_timezone.utc).date()
        found[row.platform_id, day, row.dimension, row.value, row.outcome] += row.count
    return dict(found)


def totals() -> dict[tuple, tuple[int, datetime]]:
    return {
        (t.platform_id, t.day, t.outcome): (t.count, t.first_hour)
        for t in DailyOutcomeTotal.objects.all()
    }


def totals_from_hourly_rows() -> dict[tuple, tuple[int, datetime]]:
    """What the totals must be: the hourly rows summed by UTC day, in Python."""
    found: dict[tuple, list] = {}
    for row in OutcomeCount.objects.all():
        key = (row.platform_id, row.hour.astimezone(dt_timezone.utc).date(), row.outcome)
        count, first = found.get(key, (0, row.hour))
        found[key] = (count + row.count, min(first, row.hour))
    return found


def test_day_total_rows_sum_by_utc_day_and_keep_the_earliest_hour():
    midnight = datetime(2026, 12, 5, tzinfo=dt_timezone.utc)
    rows = day_total_rows(
        [
            (midnight + timedelta(hours=5), 1, "valid", 3),
            (midnight + timedelta(hours=2), 1, "valid", 4),
            (midnight - timedelta(hours=1), 1, "valid", 5),  # 23:00 the day before
            (midnight + timedelta(hours=2), 2, "invalid", 1),
        ]
    )
    assert rows == [
        (1, midnight.date() - timedelta(days=1), "valid", 5, midnight - timedelta(hours=1)),
        (1, midnight.date(), "valid", 7, midnight + timedelta(hours=2)),
        (2, midnight.date(), "invalid", 1, midnight + timedelta(hours=2)),
    ]


def test_flushes_keep_the_totals_equal_to_the_hourly_rows_late_ones_too(db):
    platform, other = PlatformFactory(), PlatformFactory()
    now = this_hour()
    write({(platform.pk, now, "valid"): 5, (other.pk, now, "invalid"): 2})
    write({(platform.pk, now, "valid"): 1, (platform.pk, now - timedelta(hours=1), "valid"): 2})
    # A flush that comes late, of an hour three days back, and one earlier in that day.
    three_days_ago = now - timedelta(days=3)
    write({(platform.pk, three_days_ago, "missing"): 4})
    write({(platform.pk, three_days_ago.replace(hour=0), "missing"): 1})
    assert totals() == totals_from_hourly_rows()
    day = three_days_ago.date()
    assert totals()[platform.pk, day, "missing"] == (5, three_days_ago.replace(hour=0))


def test_detail_flushes_keep_their_totals_and_the_reasons_read_them(db):
    """Reasons, forms and secrets over three days, one flush late: their totals are the
    hourly rows' sums, and ``reasons_for`` and ``forms_for`` read the window from them."""
    platform = PlatformFactory()
    now = this_hour()
    two_days_ago = now - timedelta(days=2)
    write(
        {(platform.pk, now, "invalid"): 5},
        {
            (platform.pk, now, "reason", "no_match", "invalid"): 3,
            (platform.pk, now, "reason", "expired_secret", "invalid"): 2,
            (platform.pk, now, "form", "token", "valid"): 4,
            (platform.pk, now - timedelta(hours=1), "secret", "17", "valid"): 4,
        },
    )
    write({}, {(platform.pk, two_days_ago, "reason", "no_match", "invalid"): 6})  # late
    assert detail_totals() == detail_totals_from_hourly_rows()
    with CaptureQueriesContext(connection) as queries:
        reasons = diagnostics.reasons_for([platform.pk])[platform.pk]
        forms = diagnostics.forms_for([platform.pk])[platform.pk]
    assert not [q for q in queries if '_detailcount"' in q["sql"]]  # no hourly row read
    assert (reasons["no_match"], reasons["expired_secret"]) == (9, 2)
    assert forms["token"]["valid"] == 4


def test_a_flush_adds_one_statement_for_the_totals(db):
    """However many platforms, hours and outcomes a flush carries (within one statement's
    parameters): the totals cost the write one upsert."""
    platforms = [PlatformFactory() for _ in range(5)]
    now = this_hour()
    batch = {
        (p.pk, now - timedelta(hours=h), outcome): 1
        for p in platforms
        for h in range(30)
        for outcome in OUTCOMES
    }
    with CaptureQueriesContext(connection) as queries:
        write(batch)
    assert len([q for q in queries if "dailyoutcometotal" in q["sql"]]) == 1


def test_figures_read_from_the_totals_equal_the_hourly_rows(db):
    """Random counts over 10 days on 6 platforms: every platform's figures over the
    readiness window (from its first midnight) are the sums of its hourly rows there,
    and its first counted moment is its first hour there; one query of the totals."""
    rng = random.Random(20261205)
    platforms = [PlatformFactory(space=SpaceFactory(slug=f"t{n}")) for n in range(6)]
    now = this_hour()
    for _ in range(8):  # flushes, each over many hours: out of order, as processes write
        write(
            {
                (rng.choice(platforms).pk, now - timedelta(hours=rng.randrange(240)), o): (
                    rng.randrange(1, 50)
                )
                for o in rng.sample(OUTCOMES, 3)
                for _ in range(20)
            }
        )
    start = figures.window_start()
    expected: dict[int, Counter] = defaultdict(Counter)
    first: dict[int, datetime] = {}
    for row in OutcomeCount.objects.filter(hour__gte=start):
        expected[row.platform_id][row.outcome] += row.count
        first[row.platform_id] = min(first.get(row.platform_id, row.hour), row.hour)
    with CaptureQueriesContext(connection) as queries:
        found = figures.figures_for(figures.AllPlatforms(p.pk for p in platforms))
    assert not [q for q in queries if '_outcomecount"' in q["sql"]]
    for platform in platforms:
        got = found.get(platform.pk, figures.Figures())
        want = expected[platform.pk]
        assert [getattr(got, o) for o in OUTCOMES] == [want[o] for o in OUTCOMES]
        assert got.first_counted == first.get(platform.pk)


def test_prune_folds_under_the_totals_and_deletes_them_past_the_daily_retention(db, settings):
    platform = PlatformFactory()
    now = this_hour()
    old = now - timedelta(days=20)  # past HOURLY_RETENTION: folded
    write(
        {(platform.pk, old, "valid"): 7, (platform.pk, now, "valid"): 3},
        {(platform.pk, old, "reason", "no_match", "invalid"): 2},
    )
    since = now - timedelta(days=30)
    before = figures.figures_for([platform.pk], since)[platform.pk]
    assert before.valid == 10
    report = retention.prune(now=timezone.now())
    assert report.hourly_rows_folded >= 1
    assert totals()[platform.pk, old.date(), "valid"] == (7, old)  # untouched by the fold
    assert figures.figures_for([platform.pk], since)[platform.pk].valid == 10
    assert diagnostics.reasons_for([platform.pk], since)[platform.pk]["no_match"] == 2
    # Past DAILY_RETENTION they go with the daily rows.
    retention.prune(now=timezone.now() + timedelta(days=400))
    assert (platform.pk, old.date(), "valid") not in totals()
    assert detail_totals() == {}


def test_a_deleted_platform_takes_its_totals_with_it(db):
    platform = PlatformFactory()
    write({(platform.pk, this_hour(), "valid"): 1})
    platform.delete()
    assert not DailyOutcomeTotal.objects.exists()


def test_the_all_spaces_status_reads_the_totals_only(db):
    platform = PlatformFactory()
    write({(platform.pk, this_hour(), "valid"): 4, (platform.pk, this_hour(), "invalid"): 1})
    with CaptureQueriesContext(connection) as queries:
        (space,) = diagnostics.status(details=False)
    assert not [q for q in queries if '_outcomecount"' in q["sql"]]
    assert (space["platforms"][0]["valid"], space["platforms"][0]["invalid"]) == (4, 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_the_same_days_keep_the_totals_exact():
    """Four writers at once, each flushing the same platform, days and outcomes (over
    different hours): no deadlock (rows are locked in key order) and the totals are
    the hourly rows' sums, the first hours the earliest."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this runs in `make test-postgres`")
    platform = PlatformFactory()
    now = this_hour()
    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for round_ in range(10):
                write(
                    {
                        (platform.pk, now - timedelta(hours=(number * 7 + round_ + h) % 72), o): 1
                        for h in range(0, 72, 9)
                        for o in OUTCOMES
                    }
                )
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert totals() == totals_from_hourly_rows()
    assert sum(count for count, _ in totals().values()) == 4 * 10 * 8 * len(OUTCOMES)


# ------------------------------------------------------------------ the migration

BEFORE = [(APP, "0015_jwks_url")]
WITH_TOTALS = [(APP, "0016_day_totals")]


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_totals_from_the_counts_already_written():
    """Hourly rows over three days and a day prune folded (with a late hourly row of the
    same day): the migration's totals are their sums, the folded day's first hour its
    midnight."""
    latest = _latest()
    try:
        apps = _migrate(BEFORE)
        Space = apps.get_model(APP, "Space")
        Platform = apps.get_model(APP, "Platform")
        Hourly = apps.get_model(APP, "OutcomeCount")
        Daily = apps.get_model(APP, "DailyOutcomeCount")
        space = Space.objects.create(slug="legacy", name="Legacy")
        platform = Platform.objects.create(space=space, kind="ios", api_key="tik_legacy_totals")
        now = this_hour()
        for hours_ago, outcome, n in [(0, "valid", 3), (1, "valid", 4), (30, "invalid", 2),
                                      (50, "valid", 1)]:  # fmt: skip
            Hourly.objects.create(
                platform=platform, hour=now - timedelta(hours=hours_ago), outcome=outcome, count=n
            )
        folded_day = (now - timedelta(days=20)).date()
        Daily.objects.create(platform=platform, day=folded_day, outcome="valid", count=40)
        late = datetime.combine(folded_day, datetime.min.time(), tzinfo=dt_timezone.utc)
        Hourly.objects.create(
            platform=platform, hour=late + timedelta(hours=13), outcome="valid", count=2
        )
        HourlyDetail = apps.get_model(APP, "DetailCount")
        DailyDetail = apps.get_model(APP, "DailyDetailCount")
        reason = {"dimension": "reason", "value": "no_match", "outcome": "invalid"}
        HourlyDetail.objects.create(platform=platform, hour=now, count=3, **reason)
        HourlyDetail.objects.create(platform=platform, hour=late, count=1, **reason)
        DailyDetail.objects.create(platform=platform, day=folded_day, count=5, **reason)
        DailyDetail.objects.create(  # a client version: counted by day already, no total
            platform=platform, day=folded_day, dimension="app_version", value="1.0",
            outcome="valid", count=9,
        )  # fmt: skip
        apps = _migrate(WITH_TOTALS)
        DetailTotal = apps.get_model(APP, "DailyDetailTotal")
        assert {
            (t.day, t.dimension, t.value, t.outcome): t.count for t in DetailTotal.objects.all()
        } == {
            (now.date(), "reason", "no_match", "invalid"): 3,
            (folded_day, "reason", "no_match", "invalid"): 6,
        }
        Total = apps.get_model(APP, "DailyOutcomeTotal")
        found = {(t.day, t.outcome): (t.count, t.first_hour) for t in Total.objects.all()}
        hourly = Hourly.objects.exclude(hour__date=folded_day)
        expected = {
            (row["hour__date"], row["outcome"]): (row["n"], row["first"])
            for row in hourly.values("hour__date", "outcome")
            .annotate(n=Sum("count"), first=Min("hour"))
            .order_by()
        }
        expected[folded_day, "valid"] = (42, late)
        assert found == expected
    finally:
        _migrate(latest)


def test_every_platforms_details_read_without_listing_them_skip_a_newer_platform(db):
    """``status`` of all spaces reads the details of every platform without an ``IN``
    list (``AllPlatforms``); a platform made after its ids were read is left out, not
    an error."""
    listed, newer = PlatformFactory(), PlatformFactory()
    now = this_hour()
    write(
        {},
        {
            (p.pk, now, dimension, value, outcome): 1
            for p in (listed, newer)
            for dimension, value, outcome in [
                ("reason", "no_match", "invalid"),
                ("form", "token", "valid"),
            ]
        },
    )
    ids = figures.AllPlatforms([listed.pk])
    with CaptureQueriesContext(connection) as queries:
        details = diagnostics.status_details(ids)
    assert set(details) == {listed.pk}
    assert details[listed.pk]["reasons"]["no_match"] == 1
    assert details[listed.pk]["forms"]["token"]["valid"] == 1
    assert not [q for q in queries if '"platform_id" IN (' in q["sql"]]


@pytest.mark.both_paths
def test_a_flood_with_a_public_api_key_keeps_the_totals_bounded_and_true(client, platform):
    """What a client holding only the API key sends: 300 starts, each a new user id, a
    junk signature or token, a new app and SDK version. The detail totals get rows
    only for values the server names (reasons, forms: none for the versions, which have
    their own bounded slots), and every total equals its hourly rows."""
    from trusted_identity import outcomes

    from .test_http import start

    signatures = ["0" * 64, "junk", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30." + "A" * 43, None]
    for n in range(300):
        body = {"userId": f"intruder-{n}"}
        if signatures[n % 5] is not None:
            body["signed"] = signatures[n % 5]
        response = start(
            client, platform.api_key, body,
            HTTP_X_APP_VERSION=f"evil-{n}", HTTP_X_SDK_VERSION=f"sdk-{n}",
        )  # fmt: skip
        assert response.status_code == 201
    outcomes.flush()
    assert totals() == totals_from_hourly_rows()
    assert detail_totals() == detail_totals_from_hourly_rows()
    stored = DailyDetailTotal.objects.filter(platform=platform)
    assert not stored.filter(dimension__in=["app_version", "sdk_version"]).exists()
    assert {value for value in stored.values_list("value", flat=True)} <= {
        *diagnostics.REASONS, "plain", "token", "public-key",
    }  # fmt: skip
    assert stored.count() <= len(diagnostics.REASONS) * 3 + 3 * 3  # reason and form rows
    assert sum(count for count, _ in totals().values()) == 300
