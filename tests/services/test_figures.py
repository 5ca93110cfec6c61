"""Rollout figures: status, the hourly rows, the daily chart.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from tests.support import record_outcome
from trusted_identity import outcomes
from trusted_identity.exceptions import (
    SignatureRequired,
    SpaceNotFound,
)
from trusted_identity.models import (
    OutcomeCount,
)
from trusted_identity.services import counting, diagnostics, enforcement
from trusted_identity.services.figures import daily_figures, figures_for, users_of_forms
from trusted_identity.signing import sign

from ..factories import (
    OutcomeCountFactory,
)
from .helpers import _counts, _secret, _start


def test_status_figures_match_the_recorded_counts(platform, other_platform, cli_actor, commit):
    secret = _secret(platform, cli_actor)
    for user_id in ("a", "b", "c"):
        _start(platform, {"userId": user_id, "signed": sign(secret, user_id)})
    _start(platform, {"userId": "d", "signed": sign(secret, "not-d")})
    _start(platform, {"userId": "e"})
    _start(platform, {"userId": "f"})
    for _ in range(4):
        _start(platform, {})
    with commit():
        enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    with pytest.raises(SignatureRequired):
        _start(platform, {"userId": "g"})

    (space_status,) = diagnostics.status("acme")
    by_kind = {p["kind"]: p for p in space_status["platforms"]}
    figures = by_kind["ios"]
    recorded = _counts(platform)
    assert recorded == {"valid": 3, "invalid": 1, "missing": 2, "visitor": 4, "rejected": 1}
    for outcome, count in recorded.items():
        assert figures[outcome] == count
    assert figures["identified"] == 7
    assert figures["valid_share"] == pytest.approx(3 / 7, abs=1e-6)
    assert figures["enforced"] is True and figures["ready"] is False
    assert figures["api_key"] == platform.api_key
    assert by_kind["android"]["valid"] == 0 and by_kind["android"]["valid_share"] is None
    assert [s["slug"] for s in diagnostics.status()] == ["acme"]
    with pytest.raises(SpaceNotFound):
        diagnostics.status("nope")


def test_record_outcome_increments_one_hourly_row(platform):
    hour = datetime(2024, 5, 6, 10, tzinfo=dt_timezone.utc)
    record_outcome(platform.pk, "valid", at=hour + timedelta(minutes=5))
    record_outcome(platform.pk, "valid", at=hour + timedelta(minutes=55, seconds=59))
    record_outcome(platform.pk, "valid", count=3, at=hour + timedelta(minutes=30))
    record_outcome(platform.pk, "invalid", at=hour + timedelta(minutes=30))
    record_outcome(platform.pk, "valid", at=hour + timedelta(hours=1))
    rows = list(
        OutcomeCount.objects.filter(platform=platform)
        .order_by("hour", "outcome")
        .values_list("hour", "outcome", "count")
    )
    assert rows == [
        (hour, "invalid", 1),
        (hour, "valid", 5),
        (hour + timedelta(hours=1), "valid", 1),
    ]


def test_daily_figures_are_seven_days_oldest_first(platform, other_platform):
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    OutcomeCountFactory(platform=platform, outcome="valid", count=5, hour=this_hour)
    OutcomeCountFactory(
        platform=platform, outcome="invalid", count=2, hour=this_hour - timedelta(days=3)
    )
    OutcomeCountFactory(
        platform=platform, outcome="valid", count=100, hour=this_hour - timedelta(days=10)
    )
    OutcomeCountFactory(platform=other_platform, outcome="missing", count=9, hour=this_hour)

    series = daily_figures([platform.pk, other_platform.pk])
    days = [day for day, _figures in series[platform.pk]]
    today = now.astimezone(dt_timezone.utc).date()
    assert days == [today - timedelta(days=offset) for offset in range(6, -1, -1)]
    figures = dict(series[platform.pk])
    assert figures[today].valid == 5
    assert figures[today - timedelta(days=3)].invalid == 2
    assert sum(f.valid for f in figures.values()) == 5  # 10 days ago is outside
    assert dict(series[other_platform.pk])[today].missing == 9
    assert dict(series[other_platform.pk])[today].valid == 0
    assert len(daily_figures([platform.pk], days=3)[platform.pk]) == 3


def test_users_by_form_count_each_user_once_per_form_and_the_union_once(platform):
    for user, form in (
        ("a", "token"),
        ("a", "token"),  # replayed: one user
        ("a", "public-key"),  # the same user in a second form
        ("b", "public-key"),
        ("c", "plain"),
    ):
        counting.record_start(platform.pk, "valid", user, form=form)
    counting.record_start(platform.pk, "invalid", "d", reason="unknown_key", form="public-key")
    outcomes.flush()
    figures = figures_for([platform.pk])[platform.pk]
    assert figures.distinct_valid == 3
    assert figures.users_by_form == {"token": 1, "public-key": 2}  # valid users only
    assert figures.form_share("public-key") == pytest.approx(2 / 3)
    assert users_of_forms(platform.pk, ("token", "public-key")) == 2  # a and b, a once
    assert figures.as_dict()["distinct"]["forms"] == {"token": 1, "public-key": 2}
