"""What an enforced platform rejects now (issue 20): rejected starts and distinct rejected
users in the last hour and the last 24 hours, by reason and app version."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from trusted_identity import outcomes
from trusted_identity.models import DistinctUsers, Platform
from trusted_identity.services import counting, lookup, retention
from trusted_identity.services.counting import ClientVersions, rejected_kind
from trusted_identity.services.rejections import QUIET, REJECTING, rejections_now

from ..test_http import start


def reject(platform, user, reason, *, at=None, app="none"):
    counting.record_start(
        platform.pk, "rejected", user, reason=reason, client=ClientVersions(app), at=at
    )


def test_rejected_users_are_counted_per_platform_and_hour(platform):
    now = timezone.now()
    for user in ("a", "b", "a"):
        reject(platform, user, "expired_secret", at=now)
    counting.record_start(platform.pk, "invalid", "c", reason="no_match", at=now)  # not rejected
    outcomes.flush()
    day = now.date()
    kinds = set(
        DistinctUsers.objects.filter(platform=platform, day=day).values_list("kind", flat=True)
    )
    assert rejected_kind(now.hour) in kinds
    assert rejected_kind(now.hour) == f"rejected:{now.hour:02d}"
    result = rejections_now([platform.pk], now=now)[platform.pk]
    assert (result.hour.starts, result.hour.users, result.hour.users_exact) == (3, 2, True)
    assert result.hour.reasons == [("expired_secret", 3)]


def test_the_last_hour_and_the_last_24_hours_are_told_apart(platform):
    now = timezone.now()
    for n in range(4):
        reject(platform, f"old-{n}", "missing", at=now - timedelta(hours=5), app="2.9.0")
    reject(platform, "old-0", "missing", at=now - timedelta(hours=30))  # beyond 24 hours
    outcomes.flush()
    result = rejections_now([platform.pk], now=now)[platform.pk]
    assert result.state == QUIET
    assert (result.hour.starts, result.hour.users) == (0, 0)
    assert (result.day.starts, result.day.users) == (4, 4)
    assert result.day.reasons == [("missing", 4)]
    assert result.day.since == counting.hour_start(now - timedelta(hours=24))


def test_a_rejecting_platform_by_reason_and_version_through_the_endpoint(client, platform):
    Platform.objects.filter(pk=platform.pk).update(enforced=True)
    lookup.verification_changed()
    for n in range(3):
        response = start(client, platform.api_key, {"userId": f"u{n}"}, HTTP_X_APP_VERSION="2.9.0")
        assert response.status_code == 403
    start(client, platform.api_key, {"userId": "u0", "signed": "zz"}, HTTP_X_APP_VERSION="3.0")
    result = rejections_now([platform.pk])[platform.pk]
    assert result.state == REJECTING
    assert (result.hour.starts, result.hour.users) == (4, 3)
    assert result.hour.top_reason == ("missing", 3)
    assert dict(result.hour.reasons) == {"missing": 3, "malformed": 1}
    assert result.hour.logged == sum(n for _, n in result.hour.versions) >= 2
    assert {v for v, _ in result.hour.versions} <= {"2.9.0", "3.0"}


def test_no_platform_and_a_platform_without_rejections(platform):
    assert rejections_now([]) == {}
    result = rejections_now([platform.pk])[platform.pk]
    assert result.state == QUIET and result.day.starts == 0 and result.day.reasons == []


def test_prune_keeps_the_hourly_rejected_users_two_days_only(platform):
    now = timezone.now()
    reject(platform, "a", "missing", at=now - timedelta(days=3))
    reject(platform, "b", "missing", at=now)
    outcomes.flush()
    retention.prune(now=now)
    kinds = DistinctUsers.objects.filter(platform=platform).values_list("day", "kind")
    rejected = {(day, kind) for day, kind in kinds if kind.startswith("rejected:")}
    assert rejected == {(now.date(), rejected_kind(now.hour))}
    # The daily identified users of that older day stay for readiness.
    assert DistinctUsers.objects.filter(
        platform=platform, day=(now - timedelta(days=3)).date(), kind="identified"
    ).exists()
