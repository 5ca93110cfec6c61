"""``prune`` over the rollout-diagnostics tables: detail counts folded, daily ones, the
distinct users and the failure log deleted past their retention, nothing else lost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from trusted_identity.models import (
    DailyDetailCount,
    DetailCount,
    DistinctUsers,
    FailureRecord,
    Outcome,
)
from trusted_identity.services import counting, diagnostics, retention

pytestmark = pytest.mark.django_db


def record(platform, at, outcome="invalid", reason="no_match", user="u", app="1.0"):
    counting.record_start(
        platform.pk,
        outcome,
        user,
        form="plain",
        reason=reason,
        client=counting.ClientVersions(app, "web/1"),
        at=at,
    )


def test_prune_folds_old_detail_hours_into_days_and_keeps_recent_ones(platform):
    now = timezone.now()
    old = now - timedelta(days=20)
    for n in range(3):
        record(platform, old + timedelta(minutes=n * 50), user=f"old-{n}")
    record(platform, now - timedelta(hours=1), user="recent")
    before = DetailCount.objects.aggregate(n=Sum("count"))["n"]
    report = retention.prune()
    assert report.hourly_rows_folded >= 2
    assert DetailCount.objects.filter(hour__lt=now - timedelta(days=15)).count() == 0
    folded = DailyDetailCount.objects.filter(dimension__in=["reason", "form"])
    assert (
        folded.aggregate(n=Sum("count"))["n"] + DetailCount.objects.aggregate(n=Sum("count"))["n"]
        == before
    )  # moved, never lost or copied
    reasons = diagnostics.reasons_for([platform.pk], since=now - timedelta(days=30))[platform.pk]
    assert reasons["no_match"] == 4  # the window reads both tables
    retention.prune()  # again: nothing changes
    assert (
        diagnostics.reasons_for([platform.pk], since=now - timedelta(days=30))[platform.pk]
        == reasons
    )


def test_prune_deletes_days_and_the_failure_log_past_retention(platform, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "FAILURE_LOG_PER_SECOND": 10}
    now = timezone.now()
    record(platform, now - timedelta(days=401), user="ancient")
    record(
        platform, now - timedelta(days=8), user="last-week", outcome=Outcome.MISSING, reason=None
    )
    record(platform, now - timedelta(hours=2), user="today")
    FailureRecord.objects.filter(user_id="last-week").update(at=now - timedelta(days=8))
    assert FailureRecord.objects.count() == 3
    report = retention.prune()
    assert set(FailureRecord.objects.values_list("user_id", flat=True)) == {"today"}
    assert report.failures_deleted == 2
    oldest_day = (now - timedelta(days=400)).date()
    assert not DailyDetailCount.objects.filter(day__lt=oldest_day).exists()
    assert not DistinctUsers.objects.filter(day__lt=oldest_day).exists()
    assert DistinctUsers.objects.filter(day=(now - timedelta(days=8)).date()).exists()
