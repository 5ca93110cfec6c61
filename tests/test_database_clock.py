"""Grace ends by the database's clock (issue 19): each process measures its offset to it
when it reads the verification generation, and judges grace ends by its own clock plus
that offset, so a host whose clock is off stops a revoked secret as promptly as any."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.support import read_generation
from trusted_identity import dbclock, runtime, signing
from trusted_identity.services import lookup, platform_secrets, sessions, verification
from trusted_identity.state import GenerationTracker

from .test_http import secret_of


class FakeClock:
    """A process clock that the test moves, advanced by ``step`` on every reading."""

    def __init__(self, now: float, step: float = 0.0) -> None:
        self.now, self.step = now, step

    def __call__(self) -> float:
        now = self.now
        self.now += self.step
        return now


def test_the_offset_is_the_database_clock_minus_the_middle_of_the_read():
    clock = FakeClock(1_000.0, step=0.2)  # the read takes 0.2 s on this clock
    tracker = GenerationTracker(clock)
    assert tracker.current(lambda: (7, 1_020.1)) == 7  # read at 1,000.0, answer at 1,000.2
    assert tracker.offset == pytest.approx(20.0)  # 20 s behind the database
    clock.step, clock.now = 0.0, 1_005.0
    assert tracker.now() == pytest.approx(1_025.0)


def test_a_failed_read_keeps_the_last_generation_and_offset():
    tracker = GenerationTracker(FakeClock(100.0))
    tracker.current(lambda: (3, 90.0))

    def down():
        raise OperationalError("database down")

    tracker.expire()
    assert tracker.current(down) == 3
    assert tracker.offset == pytest.approx(-10.0)


def test_a_database_without_a_known_clock_leaves_the_offset_alone():
    tracker = GenerationTracker(FakeClock(100.0))
    assert tracker.current(lambda: (1, None)) == 1
    assert tracker.offset == 0.0 and tracker.now() == 100.0


def test_clear_forgets_the_offset():
    tracker = GenerationTracker(FakeClock(100.0))
    tracker.current(lambda: (1, 150.0))
    tracker.clear()
    assert (tracker.offset, len(tracker)) == (0.0, 0)


@pytest.mark.django_db
def test_the_generation_and_the_clock_come_in_one_query():
    with CaptureQueriesContext(connection) as queries:
        generation, database_time = dbclock.read_generation_and_clock()
    assert len(queries) == 1
    assert generation.value == read_generation() and len(generation.token) == 32
    assert abs(database_time - timezone.now().timestamp()) < 2
    assert database_time % 1  # sub-second precision (SQLite's julianday, not strftime %s)


@pytest.mark.django_db
def test_a_lookup_measures_the_offset_and_a_warm_start_reads_nothing_for_it(platform):
    lookup.lookup_platform(platform.api_key)  # reads the generation and the clock
    tracker = runtime.current().generation
    assert abs(tracker.offset) < 1  # one host: the database's clock is ours
    with CaptureQueriesContext(connection) as queries:
        verification.clock()
    assert len(queries) == 0


@pytest.mark.django_db
def test_a_host_behind_the_database_stops_a_revoked_secret_at_the_revocation(
    platform, cli_actor, monkeypatch
):
    """This process's clock 20 s behind the database's: the grace end the revocation
    writes (the database's now) holds as soon as the change is read, not 20 s later."""
    old = secret_of(platform)
    real = lookup.read_generation_and_clock

    def database_20_s_ahead():
        generation, now = real()
        return generation, now + 20.0

    def database_now_20_s_ahead():
        return timezone.now() + timedelta(seconds=20)

    monkeypatch.setattr(lookup, "read_generation_and_clock", database_20_s_ahead)
    monkeypatch.setattr(platform_secrets, "database_now", database_now_20_s_ahead)
    snapshot = lookup.lookup_platform(platform.api_key)
    assert runtime.current().generation.offset == pytest.approx(20.0, abs=1)
    body = {"userId": "u1", "signed": signing.sign(old, "u1")}
    assert sessions.start_session(snapshot, body).trusted
    second = platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(0))
    snapshot = lookup.lookup_platform(platform.api_key)
    assert not sessions.start_session(snapshot, body).trusted
    # A scheduled grace end, too: 24 h by the database's clock.
    platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(hours=24))
    snapshot = lookup.lookup_platform(platform.api_key)
    day_later = runtime.current().generation.now() + 24 * 3600
    signed = signing.sign(second, "u1")
    assert verification.verify_signed(snapshot, "u1", signed, day_later - 1).valid
    assert not verification.verify_signed(snapshot, "u1", signed, day_later + 1).valid


@pytest.mark.django_db
def test_a_start_judges_a_grace_end_by_the_database_clock_not_the_hosts(platform, cli_actor):
    """The snapshot in hand holds a previous secret whose grace ends in a minute; once the
    measured offset puts the database's clock past that end (the host's clock still
    before it), the previous secret stops verifying, on the next start, without a lookup."""
    old = secret_of(platform)
    platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(minutes=1))
    snapshot = lookup.lookup_platform(platform.api_key)
    signed = signing.sign(old, "u1")
    assert verification.verify_signed(snapshot, "u1", signed).valid  # within its grace
    tracker = runtime.current().generation
    (grace_end,) = [s.expires_at for s in snapshot.secrets if s.expires_at is not None]
    assert time.time() < grace_end
    tracker.offset = grace_end - time.time() + 5  # the database's clock 5 s past the end
    verdict = verification.verify_signed(snapshot, "u1", signed)
    assert (verdict.valid, verdict.reason) == (False, "expired_secret")
    assert time.time() < grace_end  # by the host's clock the grace had not ended
