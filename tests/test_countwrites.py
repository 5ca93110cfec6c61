"""How a flush writes: a few statements per table however many distinct values
arrived, one transaction for the counts, deleted platforms left out (also when one
goes away before the commit), client versions kept by weight, the buffer bounded."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timezone as dt_timezone

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_identity import countwrites, outcomes, runtime
from trusted_identity.countwrites import CountBatch, StartDetails
from trusted_identity.models import DailyDetailCount, OutcomeCount, Platform, PlatformSecret
from trusted_identity.services import counting, diagnostics, lookup, sessions
from trusted_identity.versionslots import DaySlots

from .factories import PlatformFactory
from .test_http import secret_of, set_app_settings
from .test_outcomes import buffered  # noqa: F401  (the fixture)

FORGED = 1000


def forged_flood(platform, with_versions: bool) -> int:
    """``FORGED`` forged starts (a new user and a wrong signature each), flushed every
    100 starts as the runtime's thread would; returns the statements the flushes ran."""
    snapshot = lookup.lookup_platform(platform.api_key)
    statements = 0
    for flush in range(FORGED // 100):
        for n in range(100):
            number = flush * 100 + n
            client = (
                counting.ClientVersions(f"junk-{number}", f"sdk-{number}")
                if with_versions
                else counting.NO_CLIENT
            )
            sessions.start_session(
                snapshot, {"userId": f"forger-{number}", "signed": "0" * 64}, client
            )
        with CaptureQueriesContext(connection) as queries:
            outcomes.flush()
        statements += len(queries.captured_queries)
    return statements


@pytest.mark.django_db(transaction=True)
def test_a_version_per_start_costs_at_most_half_again_the_statements(buffered, platform):
    secret_of(platform)
    without = forged_flood(platform, with_versions=False)
    with_versions = forged_flood(platform, with_versions=True)
    assert with_versions <= 1.5 * without, (with_versions, without)
    assert with_versions <= 30 * (FORGED // 100)  # a few per table and flush
    invalid = OutcomeCount.objects.filter(platform=platform, outcome="invalid")
    assert invalid.aggregate(n=Sum("count"))["n"] == 2 * FORGED
    versions = DailyDetailCount.objects.filter(platform=platform, dimension="app_version")
    assert versions.aggregate(n=Sum("count"))["n"] == 2 * FORGED  # none lost to "other"
    assert versions.exclude(value="other").values("value").distinct().count() <= 50


def version_batch(platform, values: Counter[str], outcome: str = "visitor") -> CountBatch:
    batch = CountBatch()
    now = timezone.now()
    day = now.astimezone(dt_timezone.utc).date()
    hour = counting.hour_start(now)
    for value, n in values.items():
        start = StartDetails(versions=((platform.pk, day, "app_version", value, outcome),))
        for _ in range(n):
            batch.add((platform.pk, hour, outcome), 1, start)
    return batch


def stored_versions(platform) -> dict[str, tuple[int, int]]:
    rows = DailyDetailCount.objects.filter(platform=platform, dimension="app_version")
    kept: dict[str, tuple[int, int]] = {}
    for row in rows:
        counted, error = kept.get(row.value, (0, 0))
        kept[row.value] = (counted + row.count, max(error, row.max_error))
    return kept


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("flushes", [1, 10])
def test_five_thousand_junk_versions_never_displace_a_heavier_one(platform, flushes):
    real = Counter({"3.2.1": 150, "3.1.0": 120})
    junk = Counter({f"junk-{n}": 1 for n in range(5000)})
    per_flush = 5000 // flushes
    truth = real + junk
    first = True
    for part in range(flushes):
        values = Counter({f"junk-{n}": 1 for n in range(part * per_flush, (part + 1) * per_flush)})
        if first:  # the real starts come in one process's batch, the junk in another's
            countwrites.write_counts(version_batch(platform, real, "valid"))
            first = False
        countwrites.write_counts(version_batch(platform, values))
    kept = stored_versions(platform)
    assert {"3.2.1", "3.1.0"} <= set(kept)
    assert len(kept) <= 51  # the slots and other
    assert sum(counted for counted, _ in kept.values()) == sum(truth.values())
    for value, (counted, error) in kept.items():
        if value != "other":
            assert counted <= truth[value] <= counted + error
    rows = diagnostics.versions_for([platform.pk], shown=3)[platform.pk]
    assert [row.version for row in rows[:2]] == ["3.2.1", "3.1.0"]
    assert rows[-1].version == "other"
    assert sum(row.starts for row in rows) == sum(truth.values())
    assert rows[0].as_dict()["max_error"] == 0  # counted from its first start


@pytest.mark.django_db(transaction=True)
def test_fifty_junk_versions_leave_the_real_ones_counted(platform, settings):
    countwrites.write_counts(version_batch(platform, Counter({"3.2.1": 2, "3.1.0": 2}), "valid"))
    for n in range(50):  # one start a flush, as a slow flood arrives
        countwrites.write_counts(version_batch(platform, Counter({f"junk-{n}": 1})))
    countwrites.write_counts(version_batch(platform, Counter({"3.2.1": 1}), "valid"))
    kept = stored_versions(platform)
    assert kept["3.2.1"] == (3, 0) and kept["3.1.0"] == (2, 0)
    assert sum(counted for counted, _ in kept.values()) == 55


@pytest.mark.django_db(transaction=True)
def test_a_platform_deleted_before_the_commit_loses_none_of_the_others_counts(
    platform, monkeypatch
):
    """Foreign keys are checked at commit: a platform deleted after the existence query
    fails the commit; the flush leaves it out and writes the rest again."""
    doomed = PlatformFactory(space=platform.space, kind="web")
    batch = version_batch(platform, Counter({"3.2.1": 4}))
    batch.update(version_batch(doomed, Counter({"1.0": 2})))
    Platform.objects.filter(pk=doomed.pk).delete()
    real, asked = countwrites.existing_platforms, []

    def stale_first(ids):  # the first answer still names it, as if deleted just after
        asked.append(set(ids))
        return set(ids) if len(asked) == 1 else real(ids)

    monkeypatch.setattr(countwrites, "existing_platforms", stale_first)
    assert countwrites.write_counts(batch) == 2  # one written, one dropped
    assert len(asked) == 2  # the commit failed once, then the rest went through
    assert not batch
    assert not OutcomeCount.objects.filter(platform_id=doomed.pk).exists()
    assert OutcomeCount.objects.get(platform=platform).count == 4
    assert stored_versions(platform) == {"3.2.1": (4, 0)}


@pytest.mark.django_db
def test_the_buffer_holds_a_bounded_number_of_version_keys(buffered, platform, monkeypatch):
    monkeypatch.setattr(countwrites, "MAX_BUFFERED_VERSIONS", 100)
    snapshot = lookup.lookup_platform(platform.api_key)
    for n in range(300):
        sessions.start_session(snapshot, {}, counting.ClientVersions(f"junk-{n}"))
    pending = runtime.current().counts.pending().details.versions
    assert len(pending) <= 101  # the cap, and "other"
    assert sum(pending.values()) == 600  # app and SDK versions: none lost
    outcomes.flush()
    days = DailyDetailCount.objects.filter(platform=platform, dimension="app_version")
    assert days.aggregate(n=Sum("count"))["n"] == 300


@pytest.mark.django_db
def test_secret_use_only_moves_forward(platform):
    secret = PlatformSecret.objects.filter(platform=platform).first()
    later = timezone.now()
    earlier = later - timezone.timedelta(hours=1)
    PlatformSecret.objects.filter(pk=secret.pk).update(last_verified_at=later)
    countwrites.write_secrets_used({secret.pk: (platform.pk, earlier)})
    secret.refresh_from_db()
    assert secret.last_verified_at == later
    later_still = later + timezone.timedelta(seconds=5)
    countwrites.write_secrets_used({secret.pk: (platform.pk, later_still)})
    secret.refresh_from_db()
    assert secret.last_verified_at == later_still


def test_versions_per_day_setting_still_bounds_the_slots(client, platform, settings):
    set_app_settings(settings, VERSIONS_PER_DAY=0)
    snapshot = lookup.lookup_platform(platform.api_key)
    sessions.start_session(snapshot, {}, counting.ClientVersions("3.2.1"))
    assert set(stored_versions(platform)) == {"other"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_processes_merging_the_same_day_keep_the_slots_whole(platform, monkeypatch):
    """Several writers merge batches of the same platform and day at once: the advisory
    lock serialises their merges, so the day keeps at most its slots, every start is
    counted once, and the heavy versions stay."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this runs in `make test-postgres`")
    import threading

    from django.db import connections

    errors, writers, rounds = [], 4, 10
    # Each writer its own outcome: their outcome-count rows differ, so only the version
    # merge's own lock keeps them apart.
    outcomes_ = ["visitor", "valid", "invalid", "missing"]
    real_merge = DaySlots.merge

    def slow_merge(self, batch, size):  # between the read and the write: a wide window
        time.sleep(0.01)
        real_merge(self, batch, size)

    monkeypatch.setattr(DaySlots, "merge", slow_merge)
    barrier = threading.Barrier(writers)

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for round_ in range(rounds):
                junk = Counter({f"junk-{number}-{round_}-{n}": 1 for n in range(60)})
                batch = version_batch(platform, junk + Counter({"3.2.1": 5}), outcomes_[number])
                countwrites.write_counts(batch)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    kept = stored_versions(platform)
    assert len(kept) <= 51
    assert sum(counted for counted, _ in kept.values()) == writers * rounds * 65
    assert kept["3.2.1"] == (writers * rounds * 5, 0)


@pytest.mark.django_db(transaction=True)
def test_distinct_users_of_a_deleted_platform_are_dropped_not_retried(platform):
    """Distinct users kept from a failed flush, their platform deleted since: the
    insert fails at commit (deferred foreign key), and they are dropped, not retried
    every flush."""
    doomed = PlatformFactory(space=platform.space, kind="web")
    day = timezone.now().astimezone(dt_timezone.utc).date()
    batch = CountBatch()
    batch.details.distinct[doomed.pk, day, "identified"].add_hashes((1, 2, 3))
    Platform.objects.filter(pk=doomed.pk).delete()
    countwrites.write_details_batch(batch.details)
    assert not batch.details.distinct
