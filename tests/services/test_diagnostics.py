"""Rollout diagnostics through the public endpoint: reasons, client versions, distinct
users, secret use, the failure log, and status --json (CONTRACT section 8)."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from trusted_identity import signing
from trusted_identity.models import DailyDetailCount, FailureRecord, Platform
from trusted_identity.services import (
    access,
    counting,
    diagnostics,
    durations,
    enforcement,
    lookup,
    platform_secrets,
)
from trusted_identity.services.figures import readiness
from trusted_identity.state import FailureSampler

from ..factories import PlatformFactory
from ..test_http import secret_of, set_app_settings, start

pytestmark = pytest.mark.django_db


def versions(app=None, sdk=None):
    headers = {}
    if app is not None:
        headers["HTTP_X_APP_VERSION"] = app
    if sdk is not None:
        headers["HTTP_X_SDK_VERSION"] = sdk
    return headers


def by_version(platform):
    return {v.version: v for v in diagnostics.versions_for([platform.pk])[platform.pk]}


@pytest.mark.both_paths
def test_every_invalid_start_gets_a_reason_that_never_reaches_the_answer(client, platform, space):
    other = PlatformFactory(space=space, kind="web")
    good = signing.sign(secret_of(platform), "u1")
    sent = {
        "malformed": "not-hex",
        "no_match": signing.sign("tis_some_other_secret", "u1"),
        "other_platform": signing.sign(secret_of(other), "u1"),
    }
    answers = set()
    for signed in sent.values():
        response = start(client, platform.api_key, {"userId": "u1", "signed": signed})
        assert response.status_code == 201
        body = json.loads(response.content)
        assert body["signature"] == "invalid"
        answers.add(tuple(sorted(k for k in body if k != "sessionId")))
    assert len(answers) == 1  # no reason, no extra field: no oracle
    start(client, platform.api_key, {"userId": "u1", "signed": good})
    reasons = diagnostics.reasons_for([platform.pk])[platform.pk]
    assert reasons["malformed"] == 1
    assert reasons["no_match"] + reasons["other_platform"] == 2
    assert sum(reasons.values()) == 3  # the valid start has no reason


@pytest.mark.both_paths
def test_rejected_starts_keep_their_reason_and_the_answer_stays_the_same(client, platform):
    Platform.objects.filter(pk=platform.pk).update(enforced=True)
    lookup.verification_changed()
    bodies = set()
    for signed in ("zz", "0" * 64):
        response = start(client, platform.api_key, {"userId": "u", "signed": signed})
        assert response.status_code == 403
        bodies.add(response.content)
    assert len(bodies) == 1
    assert diagnostics.reasons_for([platform.pk])[platform.pk]["malformed"] == 1
    logged = diagnostics.recent_failures(platform)
    assert {(r.outcome, r.reason) for r in logged} == {
        ("rejected", "malformed"),
        ("rejected", "no_match"),
    }


@pytest.mark.parametrize("enforced", [False, True], ids=["enforcement-off", "enforcement-on"])
def test_a_missing_signature_is_a_reason_counted_and_logged_enforcement_on_or_off(
    client, platform, enforced
):
    Platform.objects.filter(pk=platform.pk).update(enforced=enforced)
    lookup.verification_changed()
    for n in range(3):
        start(client, platform.api_key, {"userId": f"u{n}"})
    start(client, platform.api_key, {"userId": "u9", "signed": "zz"})
    start(client, platform.api_key, {})  # a visitor: no user id, no reason
    reasons = diagnostics.reasons_for([platform.pk])[platform.pk]
    assert reasons["missing"] == 3 and reasons["malformed"] == 1
    assert sum(reasons.values()) == 4
    logged = {(r.user_id, r.outcome, r.reason) for r in diagnostics.recent_failures(platform)}
    outcome = "rejected" if enforced else "missing"
    assert ("u0", outcome, "missing") in logged
    entry = diagnostics.status(platform.space.slug)[0]["platforms"][0]
    assert entry["reasons"]["missing"] == 3
    assert next(iter(entry["reasons"])) == "missing"


@pytest.mark.both_paths
def test_client_versions_are_counted_with_their_outcomes(client, platform):
    secret = secret_of(platform)
    for user in ("a", "b", "c"):
        body = {"userId": user, "signed": signing.sign(secret, user)}
        start(client, platform.api_key, body, **versions("3.2.1", "ios/2.0.0"))
    start(client, platform.api_key, {"userId": "d"}, **versions("3.1.0", "ios/1.9.0"))
    start(client, platform.api_key, {"userId": "e"}, **versions("x" * 33))  # too long
    start(client, platform.api_key, {"userId": "f"}, **versions("3.2\n"))  # not printable
    start(client, platform.api_key, {})  # a visitor, no headers
    rows = by_version(platform)
    assert rows["3.2.1"].counts["valid"] == 3 and rows["3.2.1"].valid_share == 1.0
    assert rows["3.1.0"].counts["missing"] == 1 and rows["3.1.0"].valid_share == 0.0
    assert rows["unknown"].counts["missing"] == 2
    assert rows[None].counts["visitor"] == 1  # the header was not sent
    assert next(iter(rows)) == "3.2.1"  # most-started first
    sdk = diagnostics.versions_for([platform.pk], dimension="sdk_version")[platform.pk]
    assert {v.version: v.starts for v in sdk} == {"ios/2.0.0": 3, None: 3, "ios/1.9.0": 1}


def test_version_cardinality_is_bounded_per_day(client, platform, settings):
    set_app_settings(settings, VERSIONS_PER_DAY=5)
    for n in range(12):
        start(client, platform.api_key, {"userId": f"u{n}"}, **versions(f"9.{n}"))
    days = DailyDetailCount.objects.filter(platform=platform, dimension="app_version")
    assert days.values("value").distinct().count() == 6  # five versions and "other"
    assert days.get(value="other").count == 7
    shown = diagnostics.versions_for([platform.pk], shown=3)[platform.pk]
    assert [v.version for v in shown][-1] == "other"
    assert sum(v.starts for v in shown) == 12


@pytest.mark.both_paths
def test_replaying_one_valid_pair_does_not_make_a_platform_ready(client, platform, settings):
    set_app_settings(settings, READINESS_MIN_STARTS=5)
    signed = signing.sign(secret_of(platform), "replayed")
    for n in range(8):
        start(client, platform.api_key, {"userId": f"unsigned-{n}"})
    for _ in range(300):
        start(client, platform.api_key, {"userId": "replayed", "signed": signed})
    figures = readiness(platform)
    assert figures.valid == 300 and figures.start_share > 0.97  # what starts alone say
    assert (figures.distinct_valid, figures.distinct_identified) == (1, 9)
    assert figures.valid_share == pytest.approx(1 / 9)
    assert figures.readiness == "not_ready"
    assert readiness(platform).readiness != "ready"


@pytest.mark.both_paths
def test_users_whose_other_device_does_not_sign_keep_a_platform_from_ready(
    client, platform, settings
):
    """Each user signs on one device and not on another (an old app version): every user
    has a valid start, but enforcing would reject half the starts. Not ready, and saying
    why; replaying valid pairs can't change it (a user's failing start stays counted)."""
    set_app_settings(settings, READINESS_MIN_STARTS=10)
    secret = secret_of(platform)
    for n in range(20):
        user = f"u{n}"
        start(client, platform.api_key, {"userId": user, "signed": signing.sign(secret, user)})
        start(client, platform.api_key, {"userId": user}, **versions("4.0.0"))
    figures = readiness(platform)
    assert (figures.distinct_valid, figures.distinct_identified) == (20, 20)
    assert figures.valid_share == 1.0  # every user had a valid start somewhere
    assert figures.distinct_failing == 20
    assert figures.readiness == "not_ready" and figures.held_back_by_failing_users
    with pytest.raises(enforcement.NotReady, match=r"20 of 20 distinct identified users"):
        enforcement.set_enforcement(platform, True, access.get_cli_actor())
    for _ in range(200):  # an attacker replaying a valid pair moves nothing
        start(client, platform.api_key, {"userId": "u0", "signed": signing.sign(secret, "u0")})
    assert readiness(platform).readiness == "not_ready"


def test_a_few_users_with_a_failing_start_stay_under_the_threshold(client, platform, settings):
    """Readiness tolerates failing users up to 1 - threshold, as it tolerates invalid ones."""
    set_app_settings(settings, READINESS_MIN_STARTS=10, READINESS_THRESHOLD=0.9)
    secret = secret_of(platform)
    for n in range(20):
        user = f"u{n}"
        start(client, platform.api_key, {"userId": user, "signed": signing.sign(secret, user)})
    for n in range(2):  # 10%: at the limit
        start(client, platform.api_key, {"userId": f"u{n}"})
    assert readiness(platform).readiness == "ready"
    start(client, platform.api_key, {"userId": "u2"})  # 15%: past it
    assert readiness(platform).readiness == "not_ready"


def test_readiness_needs_enough_distinct_users(client, platform, settings):
    set_app_settings(settings, READINESS_MIN_STARTS=5)
    secret = secret_of(platform)
    for n in range(4):
        for _ in range(5):  # many starts, four users
            start(
                client,
                platform.api_key,
                {"userId": f"u{n}", "signed": signing.sign(secret, f"u{n}")},
            )
    assert readiness(platform).readiness == "not_enough_starts"
    start(client, platform.api_key, {"userId": "u4", "signed": signing.sign(secret, "u4")})
    assert readiness(platform).readiness == "ready"


def test_forecast_names_old_versions_that_do_not_sign(client, platform):
    secret = secret_of(platform)
    for n in range(6):
        user = f"new-{n}"
        start(
            client,
            platform.api_key,
            {"userId": user, "signed": signing.sign(secret, user)},
            **versions("3.2.0"),
        )
    for n in range(3):
        start(client, platform.api_key, {"userId": f"old-{n}"}, **versions("3.1.4"))
    start(client, platform.api_key, {"userId": "older"}, **versions("2.9"))
    start(client, platform.api_key, {"userId": "nover"})
    figures = readiness(platform)
    forecast = diagnostics.forecast(figures, diagnostics.versions_for([platform.pk])[platform.pk])
    assert forecast.up_to == "3.1.4"
    assert forecast.old_versions_share == pytest.approx(4 / 5)
    # An hour old: the 5 failing starts are not spread over the 7-day window (issue 20).
    assert forecast.verdict == "too_young"
    assert forecast.failing_starts == 5 and forecast.starts_per_day is None
    assert (
        "5 starts without a valid signature, 80.0% of them from app versions ≤ 3.1.4"
        in forecast.sentence()
    )


def test_secret_usage_says_when_the_grace_can_end(client, platform, cli_actor):
    old_secret = secret_of(platform)
    platform_secrets.rotate_secret(platform, cli_actor, durations.parse_duration("24h"))
    usage = diagnostics.secret_usage([platform.pk])[platform.pk]
    current, previous = usage
    assert current.is_current and not previous.is_current
    # Unused since the rotation, but retired only now: too soon to call it safe.
    assert previous.state == "too_soon" and not previous.safe_to_end
    assert previous.last_verified_at is None and previous.starts_since_retired == 0
    start(client, platform.api_key, {"userId": "late", "signed": signing.sign(old_secret, "late")})
    current, previous = diagnostics.secret_usage([platform.pk])[platform.pk]
    assert previous.verified_last_24h == 1 and not previous.safe_to_end
    assert previous.state == "in_use" and previous.starts_since_retired == 1
    assert previous.users_since_retired == 1
    assert previous.last_verified_at is not None
    assert timezone.now() - previous.last_verified_at < timezone.timedelta(minutes=1)
    assert current.verified_last_24h == 0


def test_failure_log_is_sampled_per_second_and_capped(client, platform, settings):
    set_app_settings(settings, FAILURE_LOG_PER_SECOND=3, FAILURE_LOG_MAX_ROWS=5)
    for n in range(50):  # a flood within (most likely) one or two seconds
        start(client, platform.api_key, {"userId": f"forged-{n}", "signed": "0" * 64})
    logged = FailureRecord.objects.filter(platform=platform).count()
    assert 3 <= logged <= 5
    assert readiness(platform).invalid == 50  # every start still counted
    newest = diagnostics.recent_failures(platform)[0]
    assert newest.user_id.startswith("forged-") and newest.reason in ("no_match", "other_platform")


def test_a_burst_keeps_an_example_of_every_reason(client, platform, space, monkeypatch):
    """5 malformed and 3 other-platform among 43 no_match in one second: the log samples
    per reason, so each keeps FAILURE_LOG_PER_SECOND examples, and every start is counted."""
    monkeypatch.setattr(counting, "time", type("Frozen", (), {"time": staticmethod(lambda: 1e9)}))
    other = PlatformFactory(space=space, kind="web")
    burst = (
        [("f", "0" * 64)] * 43
        + [("m", "zz")] * 5
        + [("o", signing.sign(secret_of(other), "o"))] * 3
    )
    for prefix, signed in burst:
        start(client, platform.api_key, {"userId": prefix, "signed": signed})
    logged = [r.reason for r in FailureRecord.objects.filter(platform=platform)]
    assert sorted(logged) == ["malformed"] * 2 + ["no_match"] * 2 + ["other_platform"] * 2
    assert readiness(platform).invalid == 51
    coverage = diagnostics.failure_coverage([platform.pk])[platform.pk]
    assert (coverage.logged, coverage.failed) == (6, 51)


def test_the_sampler_counts_per_platform_reason_and_second(settings):
    set_app_settings(settings, FAILURE_LOG_PER_SECOND=1)
    sampler = FailureSampler()
    assert sampler.take(1, "no_match", 10.2) and not sampler.take(1, "no_match", 10.9)
    assert sampler.take(1, "malformed", 10.9) and sampler.take(2, "no_match", 10.9)
    assert sampler.take(1, "no_match", 11.0)  # a new second


def test_status_json_carries_reasons_distinct_and_versions(client, platform, space):
    start(client, platform.api_key, {"userId": "u", "signed": "nope"}, **versions("1.0"))
    (acme,) = diagnostics.status(space.slug)
    (entry,) = acme["platforms"]
    assert entry["reasons"]["malformed"] == 1
    assert set(entry["reasons"]) >= {"malformed", "no_match", "other_platform", "expired_secret"}
    assert entry["distinct"] == {
        "valid": 0,
        "identified": 1,
        "failing": 1,
        "forms": {"token": 0, "public-key": 0},
    }
    assert entry["versions"] == [
        {
            "app_version": "1.0",
            "valid": 0,
            "invalid": 1,
            "missing": 0,
            "visitor": 0,
            "rejected": 0,
            "valid_share": 0.0,
            "max_error": 0,
        }
    ]
