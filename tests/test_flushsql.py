"""The flush's hand-written statements (``trusted_identity.flushsql``) read exactly what
the ORM reads, in the types the ORM gives, across statement chunks, and the sketch's
write is a compare-and-set. Run on SQLite by ``make test`` and on PostgreSQL by
``make test-postgres``."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from trusted_identity import countwrites, flushsql, outcomes
from trusted_identity.models import (
    DailyDetailCount,
    DistinctUsers,
    FailureRecord,
    Platform,
    PlatformSecret,
)
from trusted_identity.services import counting, durations, platform_secrets

from .factories import PlatformFactory

pytestmark = pytest.mark.django_db

DAY = date(2026, 12, 6)


@pytest.fixture
def small_statements(monkeypatch):
    """Three parameters a statement: every read runs in several statements."""
    monkeypatch.setattr(flushsql, "params_per_statement", lambda connection: 3)


def test_existing_platforms_are_the_platforms_that_remain(space, small_statements):
    platforms = [PlatformFactory(space=space, kind=kind) for kind in ("web", "ios", "tvos")]
    platforms.append(PlatformFactory(space=space, kind="android"))
    gone = platforms.pop(1)
    gone_id = gone.pk
    gone.delete()
    asked = [p.pk for p in platforms] + [gone_id, 10**9]
    found = flushsql.existing_platforms(asked)
    assert found == {p.pk for p in platforms}
    assert found == set(Platform.objects.filter(pk__in=asked).values_list("pk", flat=True))
    assert flushsql.existing_platforms([]) == set()


def _version_row(platform, day, dimension, value, count):
    return DailyDetailCount.objects.create(
        platform=platform, day=day, dimension=dimension, value=value,
        outcome="valid", count=count, max_error=count // 10,
    )  # fmt: skip


def test_version_rows_are_those_of_the_groups_asked(space, small_statements):
    first, second = (
        PlatformFactory(space=space, kind="web"),
        PlatformFactory(space=space, kind="ios"),
    )
    yesterday = DAY - timedelta(days=1)
    _version_row(first, DAY, "app_version", "1.0", 5)
    _version_row(first, DAY, "app_version", "1.1", 7)
    _version_row(second, yesterday, "sdk_version", "9.0", 3)
    # Neighbours inside the cross product of the groups' platforms, days and
    # dimensions, and outside it: none of them is asked for.
    _version_row(first, yesterday, "app_version", "0.9", 11)
    _version_row(first, DAY, "sdk_version", "2.0", 13)
    _version_row(second, DAY, "sdk_version", "8.0", 17)
    groups = {(first.pk, DAY, "app_version"), (second.pk, yesterday, "sdk_version")}
    rows = flushsql.read_version_rows(groups)
    asked = Q()
    for pid, day, dimension in groups:
        asked |= Q(platform_id=pid, day=day, dimension=dimension)
    expected = DailyDetailCount.objects.filter(asked).values_list(
        "platform_id", "day", "dimension", "value", "outcome", "count", "max_error"
    )
    assert sorted(rows) == sorted(expected)
    assert {row[3] for row in rows} == {"1.0", "1.1", "9.0"}
    assert all(type(row[1]) is date for row in rows)
    assert flushsql.read_version_rows(set()) == []


def test_sketches_are_read_by_key_and_written_only_at_their_revision(space, small_statements):
    web, ios = PlatformFactory(space=space, kind="web"), PlatformFactory(space=space, kind="ios")
    for platform, day, kind, revision in (
        (web, DAY, "identified", 1),
        (web, DAY, "valid", 4),
        (ios, DAY - timedelta(days=1), "identified", 2),
        (ios, DAY, "identified", 9),  # a neighbour nobody asks for
    ):
        DistinctUsers.objects.create(
            platform=platform, day=day, kind=kind, sketch=bytes([revision]) * 3, revision=revision
        )
    asked = [
        (web.pk, DAY, "identified"),
        (web.pk, DAY, "valid"),
        (ios.pk, DAY - timedelta(days=1), "identified"),
        (ios.pk, DAY, "valid"),  # no row
    ]
    found = flushsql.read_sketches(asked)
    assert found == {
        (web.pk, DAY, "identified"): (b"\x01\x01\x01", 1),
        (web.pk, DAY, "valid"): (b"\x04\x04\x04", 4),
        (ios.pk, DAY - timedelta(days=1), "identified"): (b"\x02\x02\x02", 2),
    }

    key = (web.pk, DAY, "valid")
    assert not flushsql.replace_sketch(key, b"stale", 3)  # someone wrote since revision 3
    row = DistinctUsers.objects.get(platform=web, day=DAY, kind="valid")
    assert (bytes(row.sketch), row.revision) == (b"\x04\x04\x04", 4)
    assert flushsql.replace_sketch(key, b"merged", 4)
    row = DistinctUsers.objects.get(platform=web, day=DAY, kind="valid")
    assert (bytes(row.sketch), row.revision) == (b"merged", 5)
    assert flushsql.read_sketches([key]) == {key: (b"merged", 5)}
    # The other rows of the same platform and day are untouched.
    assert DistinctUsers.objects.get(platform=web, day=DAY, kind="identified").revision == 1


def test_retired_moments_are_the_orms_aware_datetimes(platform, cli_actor, small_statements):
    old = platform_secrets.current_secret_row(platform).pk
    platform_secrets.rotate_secret(platform, cli_actor, durations.parse_duration("24h"))
    current = platform_secrets.current_secret_row(platform).pk
    found = flushsql.retired_moments([old, current, 10**9])
    assert found == dict(PlatformSecret.objects.filter(pk=old).values_list("pk", "retired_at"))
    assert found[old].utcoffset() == timedelta(0)


class ReadsGoElsewhere:
    """A primary/replica router whose replica this suite does not have: any read a
    flush makes through the read database fails."""

    def db_for_read(self, model, **hints):
        return "replica"

    def db_for_write(self, model, **hints):
        return "default"


def test_a_flush_reads_what_it_merges_through_the_database_it_writes_to(
    platform, settings, counts_as_served, caplog
):
    """A replica's lag can't make a new platform look deleted or fail a compare-and-set:
    what a flush merges into (the platforms, the version slots, the sketches and their
    revisions, the secrets' retirement, the failure log's cap) is read where it writes."""
    secret_id = platform_secrets.current_secret_row(platform).pk
    for user in ("ann", "bob", "ann"):
        counting.record_start(
            platform.pk, "valid", user, form="plain", secret_id=secret_id,
            client=counting.ClientVersions("3.1.0", "1.0"),
        )  # fmt: skip
    counting.record_start(platform.pk, "invalid", "eve", form="plain", reason="no_match")
    settings.DATABASE_ROUTERS = [f"{__name__}.ReadsGoElsewhere"]
    assert outcomes.flush() == 2
    a_month_ago = timezone.now().date() - timedelta(days=30)
    countwrites.merge_distinct(platform.pk, a_month_ago, DistinctUsers.VALID, [42])
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    settings.DATABASE_ROUTERS = []
    versions = DailyDetailCount.objects.filter(platform=platform, dimension="app_version")
    assert sorted(versions.values_list("value", "outcome", "count")) == [
        ("3.1.0", "valid", 3),
        ("none", "invalid", 1),  # a start without a version header
    ]
    identified = DistinctUsers.objects.get(platform=platform, kind=DistinctUsers.IDENTIFIED)
    assert identified.revision == 1
    assert DistinctUsers.objects.get(platform=platform, day=a_month_ago).kind == "valid"
    assert PlatformSecret.objects.get(pk=secret_id).last_verified_at is not None
    assert list(FailureRecord.objects.values_list("user_id", "reason")) == [("eve", "no_match")]
