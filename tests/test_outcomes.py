"""Outcome counting: one buffer, one flush, sums written as atomic increments, nothing lost."""

import os
import threading

import pytest
from django.db import OperationalError, connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from tests.support import record_outcome
from trusted_identity import outcomes, runtime
from trusted_identity.conf import app_settings
from trusted_identity.countwrites import CountBatch
from trusted_identity.models import OutcomeCount, Platform
from trusted_identity.services import lookup, sessions
from trusted_identity.services.figures import readiness

from .factories import PlatformFactory


def as_a_serving_process(monkeypatch):
    """What a server process sees: no transaction around the start."""
    monkeypatch.setattr(outcomes, "in_transaction", lambda: False)


def pending():
    return dict(runtime.current().counts.pending().counts)


@pytest.fixture
def buffered(counts_as_served):
    outcomes.flush()
    yield
    outcomes.flush()


@pytest.fixture
def default_interval(settings):
    settings.TRUSTED_IDENTITY = {
        key: value
        for key, value in settings.TRUSTED_IDENTITY.items()
        if key != "COUNT_FLUSH_INTERVAL"
    }
    assert app_settings.COUNT_FLUSH_INTERVAL == 0.5


def total(platform, outcome):
    return (
        OutcomeCount.objects.filter(platform=platform, outcome=outcome).aggregate(n=Sum("count"))[
            "n"
        ]
        or 0
    )


def test_buffered_starts_make_no_query_until_flushed(buffered, platform):
    snapshot = lookup.lookup_platform(platform.api_key)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(25):
            sessions.start_session(snapshot, {})
    assert queries.captured_queries == []
    assert total(platform, "visitor") == 0
    assert sum(pending().values()) == 25

    assert outcomes.flush() == 1  # one hourly row, one write
    assert total(platform, "visitor") == 25
    assert pending() == {}


def test_where_no_thread_runs_each_start_writes_its_own_counts(buffered, platform, monkeypatch):
    """uWSGI without enable-threads: nothing is held between requests (uWSGI may end a
    worker without its exit handlers), whatever COUNT_FLUSH_INTERVAL says."""
    monkeypatch.setattr(runtime.current(), "threads", False)
    snapshot = lookup.lookup_platform(platform.api_key)
    for n in range(1, 4):
        sessions.start_session(snapshot, {})
        assert total(platform, "visitor") == n
        assert pending() == {}
    assert not runtime.current().count_thread  # no thread was started


def test_figures_include_what_this_process_has_not_written_yet(buffered, platform):
    record_outcome(platform.pk, "valid", 3)
    record_outcome(platform.pk, "missing", 1)
    figures = readiness(platform)
    assert (figures.valid, figures.missing) == (3, 1)


def test_a_failed_flush_keeps_the_counts_for_the_next_try(buffered, platform):
    record_outcome(platform.pk, "valid", 7)

    def refuse_count_writes(execute, sql, params, many, context):
        if "trusted_identity_outcomecount" in sql and not sql.lstrip().upper().startswith("SELECT"):
            raise OperationalError("database went away")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_count_writes):
        assert outcomes.flush() == 0
    assert sum(pending().values()) == 7
    assert total(platform, "valid") == 0

    outcomes.flush()
    assert total(platform, "valid") == 7


def test_unbuffered_mode_writes_each_start_at_once(platform):
    snapshot = lookup.lookup_platform(platform.api_key)
    sessions.start_session(snapshot, {})
    sessions.start_session(snapshot, {})
    assert total(platform, "visitor") == 2
    assert pending() == {}


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
                record_outcome(platform.pk, "valid" if n % 2 else "invalid")
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


# ------------------------------------------- when a count is written at once


def start_visitor(client, platform, **extra):
    response = client.post(
        "/trusted-identity/v1/sessions",
        "{}",
        content_type="application/json",
        HTTP_X_API_KEY=platform.api_key,
        **extra,
    )
    assert response.status_code == 201
    return response


def test_inside_a_transaction_a_count_is_written_in_it(default_interval, platform):
    """Whatever the interval: the count goes with the caller's transaction."""
    assert outcomes.in_transaction()  # the test's own transaction
    record_outcome(platform.pk, "valid")
    assert pending() == {}
    assert total(platform, "valid") == 1


@pytest.mark.django_db(transaction=True)
def test_with_interval_0_the_caller_writes_at_once(client):
    """No transaction around a transactional test: COUNT_FLUSH_INTERVAL = 0 is the rule."""
    platform = PlatformFactory(kind="web")
    assert not outcomes.in_transaction()
    start_visitor(client, platform)
    assert pending() == {}
    assert total(platform, "visitor") == 1


@pytest.mark.django_db(transaction=True)
def test_with_the_default_interval_a_transactional_test_waits_for_the_thread(
    default_interval, client
):
    """Nothing detects a test: with 0.5 s the runtime's thread writes, and
    ``testing.flush()`` (or any figures read) is what makes the counts exact."""
    from trusted_identity import testing

    platform = PlatformFactory(kind="web")
    start_visitor(client, platform)
    assert pending() != {} or total(platform, "visitor") == 1  # unless the thread was quick
    testing.flush()
    assert pending() == {}
    assert total(platform, "visitor") == 1


@pytest.mark.django_db(transaction=True)
def test_a_serving_process_keeps_the_buffer_even_with_atomic_requests(
    default_interval, client, monkeypatch
):
    """What the benchmark depends on: starts wait in memory, also under ATOMIC_REQUESTS
    (the session view opts out of it)."""
    platform = PlatformFactory(kind="web")
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    monkeypatch.setattr(runtime.current().count_thread, "wake", lambda: None)  # flush by hand
    try:
        start_visitor(client, platform)
        start_visitor(client, platform)
        assert sum(pending().values()) == 2
        assert total(platform, "visitor") == 0
    finally:
        outcomes.flush()
    assert total(platform, "visitor") == 2


@pytest.mark.django_db(transaction=True)
def test_counts_of_a_deleted_platform_are_dropped_not_retried(buffered, caplog):
    """Foreign keys are checked at commit: the INSERT of a deleted platform's count must
    not get that far, or the counts would stay pending and fail every flush."""
    platform = PlatformFactory(kind="web")
    record_outcome(platform.pk, "valid", 3)
    Platform.objects.filter(pk=platform.pk).delete()
    with caplog.at_level("ERROR", logger="trusted_identity"):
        assert outcomes.flush() == 1
    assert pending() == {}
    assert not OutcomeCount.objects.exists()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


def a_runtime(write):
    """A runtime of its own, writing with ``write`` (its thread never started)."""
    made = runtime.Runtime(write_counts=write, new_batch=CountBatch)
    made.count_thread.wake = lambda: None
    return made


def test_the_flush_at_exit_waits_for_the_write_in_flight():
    """gunicorn stopped gracefully: atexit's flush must not return (and let the process
    end, killing the daemon thread) while the thread still writes counts it took."""
    written, started, release = [], threading.Event(), threading.Event()

    def slow_write(batch):
        started.set()
        release.wait(5)
        written.extend(batch.counts.items())
        batch.counts.clear()
        return 1

    made = a_runtime(slow_write)
    made.counts.add((1, None, "valid"), 4)
    in_flight = threading.Thread(target=made.flush_counts)  # the background thread's flush
    in_flight.start()
    assert started.wait(5)
    assert len(made.counts) == 0  # taken by the thread, not yet written
    at_exit_done = threading.Event()
    at_exit = threading.Thread(target=lambda: (made.stop(), at_exit_done.set()))
    at_exit.start()
    assert not at_exit_done.wait(0.3), "the exit flush returned with counts still in flight"
    release.set()
    in_flight.join(5)
    at_exit.join(5)
    assert at_exit_done.is_set()
    assert written == [((1, None, "valid"), 4)]


def test_stop_writes_what_is_pending():
    written = []
    made = a_runtime(lambda batch: written.extend(batch.counts.items()) or batch.counts.clear())
    made.counts.add((1, None, "valid"), 2)
    made.counts.add((1, None, "valid"), 3)
    made.stop()
    assert written == [((1, None, "valid"), 5)]
    assert len(made.counts) == 0


@pytest.mark.django_db(transaction=True)
def test_a_buffered_flush_and_an_at_once_count_write_the_same_rows(settings, monkeypatch):
    """One path: the interval only says when the same buffer is written by the same code."""
    as_a_serving_process(monkeypatch)
    calls = []
    real = outcomes.write_batch
    monkeypatch.setattr(runtime.current(), "write_counts", real)  # the runtime's own writer
    monkeypatch.setattr(
        runtime.current().flusher, "write", lambda batch: calls.append(1) or real(batch)
    )

    def rows(platform):
        return sorted(
            OutcomeCount.objects.filter(platform=platform).values_list("outcome", "count")
        )

    at_once = PlatformFactory(kind="web")
    for outcome in ("valid", "valid", "invalid", "visitor"):
        record_outcome(at_once.pk, outcome)
    assert pending() == {} and len(calls) == 4  # interval 0: the caller flushed each

    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 60}
    runtime.current().count_thread.wake = lambda: None
    monkeypatch.setattr(
        runtime.current().flusher, "write", lambda batch: calls.append(1) or real(batch)
    )
    buffered_platform = PlatformFactory(kind="ios")
    for outcome in ("valid", "valid", "invalid", "visitor"):
        record_outcome(buffered_platform.pk, outcome)
    assert sum(pending().values()) == 4 and len(calls) == 4
    outcomes.flush()
    assert len(calls) == 5
    assert (
        rows(at_once) == rows(buffered_platform) == [("invalid", 1), ("valid", 2), ("visitor", 1)]
    )


def test_a_forked_child_does_not_write_the_parents_pending_counts(tmp_path):
    """gunicorn --preload, multiprocessing: the child starts from a new runtime, without
    the parent's buffer or thread; the parent keeps its counts."""
    parent = runtime.current()
    parent.counts.add((1, None, "valid"), 3)
    report = tmp_path / "child"
    pid = os.fork()
    if pid == 0:  # the child: report what it holds, never run the test's teardown
        try:
            child = runtime.current()
            report.write_text(f"{child is parent} {len(child.counts)} {len(child)}")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert report.read_text() == "False 0 0"
    assert pending() == {(1, None, "valid"): 3}
    parent.counts.clear()
