"""The states of a platform secret (``models.SecretState``): one rule, spelled as queryset
methods (SQL) and as ``PlatformSecret.state_at`` (a row in hand), which must agree on
every row, exactly at each boundary: the end of a grace, the end of the retention.
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from trusted_identity.models import PlatformSecret, SecretState

AT = datetime(2030, 6, 1, 12, 0, tzinfo=dt_timezone.utc)
TICK = timedelta(microseconds=1)
RETENTION = timedelta(days=30)  # EXPIRED_SECRET_RETENTION's default

#: A retired row's end of grace, relative to AT, and its state at AT.
RETIRED = {
    "in grace": (RETENTION, SecretState.PREVIOUS),
    "one tick before its grace ends": (TICK, SecretState.PREVIOUS),
    "exactly at its grace's end": (timedelta(0), SecretState.EXPIRED),
    "one tick after its grace ended": (-TICK, SecretState.EXPIRED),
    "one tick inside the retention": (-RETENTION + TICK, SecretState.EXPIRED),
    "exactly at the retention's end": (-RETENTION, SecretState.PAST_RETENTION),
    "past the retention": (-RETENTION - TICK, SecretState.PAST_RETENTION),
}


@pytest.fixture
def rows(platform):
    """The platform's current secret and one retired row per case, by case."""
    made = {"current": (PlatformSecret.objects.get(platform=platform), SecretState.CURRENT)}
    for case, (ends_in, state) in RETIRED.items():
        row = PlatformSecret.objects.create(
            platform=platform,
            ciphertext="",
            retired_at=AT - timedelta(days=60),
            valid_until=AT + ends_in,
        )
        made[case] = (row, state)
    endless = PlatformSecret.objects.create(
        platform=platform, ciphertext="", retired_at=AT - timedelta(days=1), valid_until=None
    )
    made["retired without an end"] = (endless, SecretState.PAST_RETENTION)
    return made


def ids(queryset):
    return set(queryset.values_list("pk", flat=True))


def test_each_row_is_in_its_state_in_sql_and_in_python(rows):
    annotated = dict(PlatformSecret.objects.with_state(AT).values_list("pk", "state"))
    for case, (row, state) in rows.items():
        assert row.state_at(AT) == state, case
        assert annotated[row.pk] == state, case


def test_each_filter_holds_exactly_its_state(rows):
    expected = {state: set() for state in SecretState}
    for row, state in rows.values():
        expected[state].add(row.pk)
    secrets = PlatformSecret.objects
    assert ids(secrets.current()) == expected[SecretState.CURRENT]
    assert ids(secrets.previous_in_grace(AT)) == expected[SecretState.PREVIOUS]
    assert ids(secrets.kept_expired(AT)) == expected[SecretState.EXPIRED]
    assert ids(secrets.past_retention(AT)) == expected[SecretState.PAST_RETENTION]
    verifying = expected[SecretState.CURRENT] | expected[SecretState.PREVIOUS]
    assert ids(secrets.verifying(AT)) == verifying
    assert {row.pk for row, _ in rows.values() if row.verifies_at(AT)} == verifying


def test_the_states_partition_the_rows(rows):
    secrets = PlatformSecret.objects
    parts = [
        ids(secrets.current()),
        ids(secrets.previous_in_grace(AT)),
        ids(secrets.kept_expired(AT)),
        ids(secrets.past_retention(AT)),
    ]
    assert sum(len(part) for part in parts) == len(rows)
    assert set().union(*parts) == {row.pk for row, _ in rows.values()}


def test_a_row_moves_through_the_states_as_time_passes(rows):
    row, _ = rows["in grace"]
    end = row.valid_until
    for at, state in (
        (end - TICK, SecretState.PREVIOUS),
        (end, SecretState.EXPIRED),
        (end + RETENTION - TICK, SecretState.EXPIRED),
        (end + RETENTION, SecretState.PAST_RETENTION),
    ):
        assert row.state_at(at) == state
        assert PlatformSecret.objects.with_state(at).get(pk=row.pk).state == state


def test_the_retention_is_the_setting(rows, settings):
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "EXPIRED_SECRET_RETENTION": timedelta(days=1),
    }
    row, _ = rows["one tick after its grace ended"]
    assert row.state_at(AT + timedelta(days=1) - 2 * TICK) == SecretState.EXPIRED
    assert row.state_at(AT + timedelta(days=1)) == SecretState.PAST_RETENTION
    assert ids(PlatformSecret.objects.past_retention(AT + timedelta(days=1))) >= {row.pk}


def test_the_methods_default_to_now(platform):
    (row,) = PlatformSecret.objects.filter(platform=platform)
    assert row.state_at() == SecretState.CURRENT and row.verifies_at()
    assert ids(PlatformSecret.objects.verifying()) == {row.pk}
    assert ids(platform.secrets.current()) == {row.pk}  # the related manager has them too
    assert not PlatformSecret.objects.kept_expired().exists()
