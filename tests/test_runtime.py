"""The runtime: every piece of per-process state in one object, one reset() for all."""

from __future__ import annotations

import threading
import time

import pytest

from trusted_identity import runtime, testing
from trusted_identity.countwrites import CountBatch, StartDetails
from trusted_identity.exceptions import InvalidApiKey
from trusted_identity.nearcache import NearCache
from trusted_identity.services import key_tables, lookup, verification

pytestmark = pytest.mark.django_db


def test_every_part_is_listed():
    """A new piece of state is added to Runtime.PARTS, so that reset() and this test see it."""
    made = runtime.current()
    listed = set(runtime.Runtime.PARTS)
    stateful = {
        name
        for name, value in vars(made).items()
        if hasattr(value, "clear") or isinstance(value, (runtime.Worker, NearCache))
    }
    assert stateful <= listed
    for part in runtime.Runtime.PARTS:
        assert hasattr(getattr(made, part), "__len__"), part


def test_reset_leaves_nothing_behind(client, platform, settings):
    """Fill every part through the app's own paths, reset, and find each empty."""
    from trusted_identity.ratelimit import parse_rate
    from trusted_identity.services.lookup import every_allowed_origin

    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 60}
    made = runtime.current()
    made.count_thread.wake()  # started, waiting for its interval
    verification.sign_for("acme", "ios", "u-1")  # key ring, lookup, key table
    snapshot = lookup.lookup_platform(platform.api_key)
    key_tables.diagnostic_keys(snapshot, 0.0)
    with pytest.raises(InvalidApiKey):
        lookup.lookup_platform("tik_no_such_key")  # remembered as unknown
    every_allowed_origin()
    parse_rate("5/m")
    from trusted_identity.authentication import authenticators

    authenticators()
    made.tokens.headers["x"] = True
    from trusted_identity.services.counting import user_hasher

    user_hasher()
    made.failure_sampler.take(platform.pk, "no_match", 1.0)
    made.alerts_raised.first_time((1, "k", "v"))
    made.counts.add((platform.pk, None, "valid"), 1, StartDetails())
    made.outbox.put(lambda: None)
    made.diagnostic_tables.get("k", lambda: 1)
    made.public_key_sets.get("k", lambda: 1)
    made.jwks_throttle.take(platform.pk, 60.0)
    done = threading.Event()
    made.jwks_refreshes.start("jwks-test", lambda: done.wait(5))  # running until reset
    made.private_keys.get("k", lambda: 1)
    made.key_signers.get("k", lambda: 1)
    made.delivery_thread.wake()
    made.thread_connections.all()
    empty = [part for part in runtime.Runtime.PARTS if len(getattr(made, part)) == 0]
    assert empty == [], f"not filled by the test: {empty}"

    done.set()
    made.reset()
    assert {part: len(getattr(made, part)) for part in runtime.Runtime.PARTS} == dict.fromkeys(
        runtime.Runtime.PARTS, 0
    )


def test_a_setting_change_resets_the_runtime(settings):
    made = runtime.current()
    made.alerts_raised.first_time((1, "k", "v"))
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "FAILURE_LOG_PER_SECOND": 3}
    assert len(made.alerts_raised) == 0


def test_testing_reset_is_the_runtime_reset():
    made = runtime.current()
    made.failure_sampler.take(1, "no_match", 1.0)
    made.counts.add((1, None, "valid"))
    testing.reset()
    assert len(made) == 0


def test_a_batch_adds_up_as_the_buffer_does():
    batch = CountBatch()
    batch.add((1, None, "valid"), 2)
    other = CountBatch()
    other.add((1, None, "valid"), 3)
    batch.update(other)
    assert batch.counts == {(1, None, "valid"): 5} and batch.copy().counts == batch.counts


#: A multiprocessing child started by fork, as Granian's workers are: it sets Django up
#: itself, then ends through multiprocessing's bootstrap, which leaves with os._exit().
_FORKED_CHILD = """
import multiprocessing, sys

def child():
    import django
    django.setup()
    from trusted_identity import runtime
    runtime.current().stop = lambda: open(sys.argv[1], "w").write("stopped")

if __name__ == "__main__":
    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    sys.exit(process.exitcode)
"""


def test_a_forked_multiprocessing_child_writes_its_counts_at_its_end(tmp_path):
    """Its exit handlers never run (os._exit), multiprocessing's finalizers do: the
    runtime's final write is one of them (Granian's WSGI workers end this way)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    marker = tmp_path / "stopped"
    script = tmp_path / "forked.py"
    script.write_text(_FORKED_CHILD)
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo), "DJANGO_SETTINGS_MODULE": "project.settings",
           "DJANGO_READ_DOT_ENV": "0", "DEBUG": "1"}  # fmt: skip
    done = subprocess.run([sys.executable, str(script), str(marker)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "stopped"


@pytest.mark.django_db(transaction=True)
def test_background_work_leaves_no_database_connection_open():
    """A background thread's connection is closed when its work is done, an in-memory
    SQLite one included (Django's close_all() keeps those; the garbage collector would
    close it later, a ResourceWarning from Python 3.13)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    used = []

    def work():
        get_user_model().objects.count()
        used.append(connection.connection)

    background = runtime.Background()
    assert background.start("count-users", work)
    background.wait()
    assert len(used) == 1 and used[0] is not None
    with pytest.raises(Exception, match="closed"):
        used[0].execute("SELECT 1")
    assert get_user_model().objects.count() == 0  # this thread's database is still there


def _wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_wakes_while_the_writer_works_bring_one_more_run_and_no_wake_is_lost():
    """Every session start wakes the count writer: a wake while a run is in flight
    brings exactly one more run (what was added meanwhile is written), however many
    starts woke it, and a wake after that run brings another."""
    runs: list[int] = []
    first_run_started, release_first_run = threading.Event(), threading.Event()

    def work() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            first_run_started.set()
            release_first_run.wait(5)

    worker = runtime.Worker("test-writer", work, lambda: 0.01)
    try:
        worker.wake()
        assert first_run_started.wait(5)
        for _ in range(100):  # a hundred starts while the first write is in flight
            worker.wake()
        release_first_run.set()
        assert _wait_for(lambda: len(runs) == 2)
        time.sleep(0.1)
        assert runs == [1, 2]  # the hundred wakes were one run
        worker.wake()
        assert _wait_for(lambda: len(runs) == 3)
    finally:
        worker.stop()


def test_a_threads_connections_are_djangos_found_once_per_thread():
    """``ThreadConnections`` gives each thread Django's own connection objects for it
    (what ``connections[alias]`` gives there), found once; a thread running an event
    loop asks Django each time (its connections are per task there)."""
    import asyncio

    from django.db import connections

    from trusted_identity.state import ThreadConnections

    held = ThreadConnections()

    def asked() -> tuple:
        everything = held.all()
        return (
            everything,
            held.all(),
            held.get("default"),
            [connections[alias] for alias in connections],
            connections["default"],
        )

    here = asked()
    there: list = []
    thread = threading.Thread(target=lambda: there.append(asked()))
    thread.start()
    thread.join(10)
    for first, again, default, djangos, djangos_default in (here, there[0]):
        assert first is again  # found once
        assert [id(c) for c in first] == [id(c) for c in djangos]
        assert default is djangos_default
    assert here[2] is not there[0][2]  # each thread its own
    assert len(held) == len(here[0])
    held.clear()
    assert len(held) == 0 and held.all() is not here[0]

    async def in_a_loop() -> bool:
        return held.get("default") is connections["default"]

    assert asyncio.run(in_a_loop())


@pytest.mark.django_db(transaction=True)
def test_counts_inside_a_transaction_are_written_in_it_from_any_thread(platform, settings):
    """The counts' transaction check (``outcomes.in_transaction``) reads the calling
    thread's own connection: inside ``atomic`` a count is written at once, in it (and
    rolled back with it); outside, it goes to the buffer."""
    from django.db import transaction
    from django.utils import timezone

    from trusted_identity import outcomes
    from trusted_identity.models import OutcomeCount
    from trusted_identity.services.counting import hour_start

    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "COUNT_FLUSH_INTERVAL": 60}

    def count_in(atomic: bool) -> tuple[bool, int]:
        if atomic:
            with transaction.atomic():
                outcomes.count(platform.pk, hour_start(timezone.now()), "valid")
                inside = OutcomeCount.objects.filter(platform=platform).count()
                transaction.set_rollback(True)
            return outcomes.in_transaction(), inside
        outcomes.count(platform.pk, hour_start(timezone.now()), "valid")
        return outcomes.in_transaction(), OutcomeCount.objects.filter(platform=platform).count()

    def in_a_thread(atomic: bool) -> None:
        try:
            results.append(count_in(atomic))
        finally:
            runtime.close_thread_connections()

    results: list = []
    for atomic in (True, False):
        thread = threading.Thread(target=in_a_thread, args=(atomic,))
        thread.start()
        thread.join(10)
    runtime.current().counts.clear()
    assert results == [(False, 1), (False, 0)]
