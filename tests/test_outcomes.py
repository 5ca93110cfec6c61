"""Buffered outcome counting: sums written as atomic increments, nothing lost."""

import threading

import pytest
from django.db import OperationalError, connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from trusted_identity import outcomes, services
from trusted_identity.models import OutcomeCount

from .factories import PlatformFactory


@pytest.fixture
def buffered(settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 60}
    outcomes.flush()
    yield
    outcomes.flush()


def total(platform, outcome):
    return (
        OutcomeCount.objects.filter(platform=platform, outcome=outcome).aggregate(n=Sum("count"))[
            "n"
        ]
        or 0
    )


def test_buffered_starts_make_no_query_until_flushed(buffered, platform):
    snapshot = services.lookup_platform(platform.api_key)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(25):
            services.start_session(snapshot, {})
    assert queries.captured_queries == []
    assert total(platform, "visitor") == 0
    assert sum(outcomes.pending().values()) == 25

    assert outcomes.flush() == 1  # one hourly row, one write
    assert total(platform, "visitor") == 25
    assert outcomes.pending() == {}


def test_figures_include_what_this_process_has_not_written_yet(buffered, platform):
    services.record_outcome(platform.pk, "valid", 3)
    services.record_outcome(platform.pk, "missing", 1)
    figures = services.readiness(platform)
    assert (figures.valid, figures.missing) == (3, 1)


def test_a_failed_flush_keeps_the_counts_for_the_next_try(buffered, platform):
    services.record_outcome(platform.pk, "valid", 7)

    def refuse_count_writes(execute, sql, params, many, context):
        if "trusted_identity_outcomecount" in sql and not sql.lstrip().upper().startswith("SELECT"):
            raise OperationalError("database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_count_writes):
        assert outcomes.flush() == 0
    assert sum(outcomes.pending().values()) == 7
    assert total(platform, "valid") == 0

    outcomes.flush()
    assert total(platform, "valid") == 7


def test_unbuffered_mode_writes_each_start_at_once(platform):
    snapshot = services.lookup_platform(platform.api_key)
    services.start_session(snapshot, {})
    services.start_session(snapshot, {})
    assert total(platform, "visitor") == 2
    assert outcomes.pending() == {}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_threads_lose_no_count(settings):
    """Threads with their own connections increment the same hourly rows at once."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers; this runs in `make test-postgres`")
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 0}
    platform = PlatformFactory(kind="android")
    threads, per_thread = 6, 40
    barrier = threading.Barrier(threads)
    errors = []

    def worker():
        try:
            barrier.wait()
            for n in range(per_thread):
                services.record_outcome(platform.pk, "valid" if n % 2 else "invalid")
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    assert total(platform, "valid") + total(platform, "invalid") == threads * per_thread
    assert total(platform, "valid") == threads * per_thread // 2
