"""The enforcement forecast (issue 20): over the span actually observed, in starts and
users, saying when the data is too young or too thin, never "about 0 ... 100%"."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from trusted_identity.services.figures import Figures, window_start
from trusted_identity.services.forecast import (
    ESTIMATE,
    NO_STARTS,
    TOO_THIN,
    TOO_YOUNG,
    VersionRow,
    forecast,
)

NOW = datetime(2026, 12, 4, 16, 30, tzinfo=dt_timezone.utc)


def figures(*, valid, invalid=0, missing=0, users, valid_users, failing=None, first=None):
    """By default the failing users are those without a valid start (one start each)."""
    return Figures(
        valid=valid,
        invalid=invalid,
        missing=missing,
        distinct_identified=users,
        distinct_valid=valid_users,
        distinct_failing=users - valid_users if failing is None else failing,
        first_counted=first,
    )


def version(name, valid=0, missing=0):
    row = VersionRow(name)
    row.counts["valid"], row.counts["missing"] = valid, missing
    return row


def test_an_hour_old_platform_is_too_young_and_not_divided_by_seven_days():
    # Issue 20: 18 failures in the last hour read "about 3 a day".
    young = figures(
        valid=150, missing=18, users=160, valid_users=150, first=NOW - timedelta(hours=1)
    )
    result = forecast(young, [], now=NOW)
    assert result.verdict == TOO_YOUNG
    assert result.observed == timedelta(hours=1)
    assert result.starts_per_day is None and result.users_per_day is None
    sentence = result.sentence()
    assert sentence.startswith("Too early to forecast a day: only 1 hour observed")
    assert (
        "18 starts without a valid signature; 10 users made starts without a valid signature"
        in sentence
    )
    assert "about" not in sentence


def test_too_few_users_says_how_many_of_the_needed():
    thin = figures(valid=50, missing=9, users=59, valid_users=50, first=NOW - timedelta(days=3))
    result = forecast(thin, [], now=NOW)
    assert result.verdict == TOO_THIN
    assert result.sentence().startswith("Too few users to forecast: 59 of the 100 needed.")
    assert "In the 3 days observed: 9 starts" in result.sentence()


def test_a_normal_window_divides_by_the_span_observed_from_the_first_counted_hour():
    first = NOW - timedelta(days=2)  # younger than the 7-day window
    normal = figures(valid=900, invalid=40, missing=20, users=300, valid_users=288, first=first)
    versions = [
        version("3.2.0", valid=900, missing=40),
        version("2.9.0", missing=20),
        version(None),
    ]
    result = forecast(normal, versions, now=NOW)
    assert result.verdict == ESTIMATE
    assert result.observed == timedelta(days=2)
    assert result.starts_per_day == pytest.approx(30)  # 60 over 2 days, not over 7
    assert result.users_per_day == pytest.approx(6)
    assert result.failing_users == 12
    assert result.sentence() == (
        "Enforcing now would reject about 30 starts a day (60 starts in the 2 days observed, "
        "33.3% of them from app versions ≤ 2.9.0); 12 users made starts without a valid "
        "signature and would be rejected (on an old app version, or everywhere)."
    )


def test_the_observed_span_is_at_most_the_window():
    old = figures(valid=100, missing=7, users=120, valid_users=110, first=NOW - timedelta(days=30))
    result = forecast(old, [], now=NOW)
    assert result.observed_since == window_start(NOW - timedelta(days=7))
    assert result.verdict == ESTIMATE


@pytest.mark.parametrize(
    "data",
    [
        {"valid": 0, "users": 0, "valid_users": 0},  # nothing identified
        {"valid": 500, "users": 150, "valid_users": 150},  # nothing failing
        {"valid": 500, "missing": 1, "users": 150, "valid_users": 149},  # < 1 a day
    ],
    ids=["no-starts", "none-failing", "rare"],
)
def test_never_about_zero_with_a_share_of_it(data):
    first = NOW - timedelta(days=6) if data["valid"] else None
    result = forecast(figures(**data, first=first), [version("2.9.0", missing=1)], now=NOW)
    sentence = result.sentence()
    assert "about 0" not in sentence
    assert "100.0%" not in sentence or result.failing_starts
    if result.verdict == NO_STARTS:
        assert sentence.startswith("Nothing to forecast")
    elif not result.failing_starts:
        assert sentence == "Enforcing now would have rejected no start in the 6 days observed."
    else:
        assert sentence.startswith("Enforcing now would reject fewer than 1 start a day (1 start")


def test_the_result_is_a_dataclass_the_confirmation_page_can_show_too():
    result = forecast(figures(valid=1, users=1, valid_users=1, first=NOW), [], now=NOW)
    assert set(result.as_dict()) >= {
        "verdict",
        "observed_seconds",
        "failing_starts",
        "failing_users",
        "starts_per_day",
        "users_per_day",
    }
    assert result.observed == timedelta(hours=1)  # at least an hour
