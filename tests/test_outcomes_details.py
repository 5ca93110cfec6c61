"""Buffered details of session starts (versions, reasons, distinct users, the failure
log): no query per start, one write per row per flush, nothing lost on a failed write
or when several processes merge into the same distinct-user row."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from trusted_identity import countwrites, outcomes, runtime, signing
from trusted_identity.models import DistinctUsers, FailureRecord
from trusted_identity.services import counting, diagnostics, lookup, sessions
from trusted_identity.services.figures import readiness
from trusted_identity.sketch import DistinctSketch, user_hash

from .test_http import secret_of
from .test_outcomes import buffered  # noqa: F401  (the fixture)

KEY = b"test key"
CLIENT = counting.ClientVersions("3.2.1", "web/1.4.0")


def start_many(platform, users, signed_ok=True):
    snapshot = lookup.lookup_platform(platform.api_key)
    secret = secret_of(platform)
    for user in users:
        signed = signing.sign(secret, user) if signed_ok else "0" * 64
        sessions.start_session(snapshot, {"userId": user, "signed": signed}, CLIENT)


@pytest.mark.django_db(transaction=True)
def test_buffered_details_wait_for_the_flush_and_add_up(buffered, platform):
    secret_of(platform)  # decrypt before counting queries
    snapshot = lookup.lookup_platform(platform.api_key)
    with CaptureQueriesContext(connection) as queries:
        start_many(platform, [f"u{n % 40}" for n in range(200)])
        start_many(platform, ["forger-1", "forger-2"], signed_ok=False)
    count_tables = ("outcomecount", "detailcount", "distinctusers", "failurerecord", "alert")
    touched = [
        q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in count_tables)
    ]
    assert touched == []  # nothing read or written for the counts until the flush
    assert snapshot.platform_id == platform.pk
    outcomes.flush()
    figures = readiness(platform)
    assert (figures.valid, figures.invalid) == (200, 2)
    assert (figures.distinct_valid, figures.distinct_identified) == (40, 42)
    (version,) = diagnostics.versions_for([platform.pk])[platform.pk]
    assert version.version == "3.2.1" and version.starts == 202
    assert FailureRecord.objects.filter(platform=platform).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_failed_details_write_keeps_them_for_the_next_flush(buffered, platform, monkeypatch):
    start_many(platform, ["a", "b", "c"])
    real = countwrites.write_distinct
    monkeypatch.setattr(
        countwrites, "write_distinct", lambda *a: (_ for _ in ()).throw(OperationalError("down"))
    )
    outcomes.flush()
    assert not DistinctUsers.objects.exists()
    assert runtime.current().counts.pending().details.distinct  # kept
    monkeypatch.setattr(countwrites, "write_distinct", real)
    outcomes.flush()
    assert readiness(platform).distinct_valid == 3


@pytest.mark.django_db
def test_merging_distinct_users_never_loses_another_process_write(platform, monkeypatch):
    """Another process merges into the row between our read and our write: the
    compare-and-set on the revision fails, we read again, and both sets count."""
    day = timezone.now().date()
    countwrites.merge_distinct(platform.pk, day, "identified", {user_hash("first", KEY)})
    real_from_bytes = DistinctSketch.from_bytes
    interleaved = []

    def from_bytes_with_a_rival(data):
        sketch = real_from_bytes(data)
        if not interleaved:
            interleaved.append(True)
            countwrites.merge_distinct(platform.pk, day, "identified", {user_hash("rival", KEY)})
        return sketch

    monkeypatch.setattr(DistinctSketch, "from_bytes", staticmethod(from_bytes_with_a_rival))
    countwrites.merge_distinct(platform.pk, day, "identified", {user_hash("ours", KEY)})
    monkeypatch.setattr(DistinctSketch, "from_bytes", staticmethod(real_from_bytes))
    row = DistinctUsers.objects.get(platform=platform, day=day, kind="identified")
    assert DistinctSketch.from_bytes(row.sketch).count() == 3
    assert row.revision == 3


@pytest.mark.django_db
def test_a_user_id_longer_than_the_log_column_is_logged_cut(platform, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "MAX_USER_ID_LENGTH": 5000}
    snapshot = lookup.lookup_platform(platform.api_key)
    long_id = "u" * 3000
    sessions.start_session(snapshot, {"userId": long_id, "signed": "0" * 64})
    (record,) = FailureRecord.objects.filter(platform=platform)
    assert record.user_id == long_id[:1024]
    assert readiness(platform).distinct_identified == 1  # counted in full


@pytest.mark.django_db
def test_a_failure_log_write_that_fails_is_dropped_not_retried(platform, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OperationalError("disk full")

    monkeypatch.setattr(FailureRecord.objects, "bulk_create", broken)
    start_many(platform, ["x"], signed_ok=False)
    assert not runtime.current().counts.pending().details.failures
    assert readiness(platform).invalid == 1  # the counts went through
    assert "dropped them" in caplog.text


@pytest.mark.django_db
def test_users_are_hashed_with_the_installation_key_read_once(platform, django_assert_num_queries):
    """Every process hashes with the one key in the database (so their sketches merge),
    read once per process; a start after that reads nothing for it."""
    from trusted_identity.models import SketchKey

    stored = SketchKey.load()
    assert len(stored) == 32
    start_many(platform, ["alice"])
    with django_assert_num_queries(0):
        assert counting.user_hasher()("bob") == user_hash("bob", stored)
    row = DistinctUsers.objects.get(platform=platform, kind=DistinctUsers.VALID)
    sketch = DistinctSketch.from_bytes(row.sketch)
    expected = DistinctSketch()
    expected.add("alice", stored)
    assert sketch.to_bytes() == expected.to_bytes()
    assert stored not in str(SketchKey.objects.get()).encode()
    assert stored not in repr(counting.user_hasher()).encode()


@pytest.mark.django_db
def test_a_key_that_cannot_be_read_leaves_the_user_uncounted_not_the_start(platform, monkeypatch):
    from trusted_identity.models import SketchKey

    def down():
        raise OperationalError("database down")

    monkeypatch.setattr(SketchKey, "load", staticmethod(down))
    start_many(platform, ["alice"])
    assert not DistinctUsers.objects.exists()
    assert readiness(platform).valid == 1
