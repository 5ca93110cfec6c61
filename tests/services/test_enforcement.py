"""Enforcement under the readiness rule, its override, and the warm cache.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from trusted_identity.exceptions import (
    InvalidRequest,
    SignatureRequired,
)
from trusted_identity.models import Platform, PolicyChange, Role
from trusted_identity.services import access, enforcement
from trusted_identity.services.enforcement import NotReady
from trusted_identity.services.figures import NOT_ENOUGH_STARTS, READY, readiness

from ..factories import MembershipFactory, OutcomeCountFactory, PlatformFactory, UserFactory
from .helpers import USER_ID, _audit_events, _start


def test_enforcement_refused_below_threshold(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=98)
    OutcomeCountFactory(platform=platform, outcome="invalid", count=1)
    OutcomeCountFactory(platform=platform, outcome="missing", count=1)
    OutcomeCountFactory(platform=platform, outcome="visitor", count=500)
    logs_before = _audit_events(platform).count()
    with pytest.raises(NotReady) as excinfo:
        enforcement.set_enforcement(platform, True, cli_actor)
    figures = excinfo.value.figures
    assert (figures.valid, figures.invalid, figures.missing, figures.visitor) == (98, 1, 1, 500)
    assert figures.identified == 100
    assert figures.valid_share == pytest.approx(0.98)
    assert "98.0%" in excinfo.value.message
    platform.refresh_from_db()
    assert not platform.enforced
    assert _audit_events(platform).count() == logs_before


@pytest.mark.parametrize("identified", [0, 1, 99])
def test_too_few_identified_starts_are_not_enough_to_tell(platform, cli_actor, identified):
    """Finding 8 of the revocation issue: no evidence is not readiness. Visitors don't
    count, and even all-valid starts below the minimum sample need the override."""
    OutcomeCountFactory(platform=platform, outcome="visitor", count=500)
    if identified:
        OutcomeCountFactory(platform=platform, outcome="valid", count=identified)
    figures = readiness(platform)
    assert (figures.readiness, figures.is_ready()) == ("not_enough_starts", False)
    assert figures.as_dict()["readiness"] == "not_enough_starts"
    with pytest.raises(NotReady) as excinfo:
        enforcement.set_enforcement(platform, True, cli_actor)
    assert "not enough starts to tell" in excinfo.value.message
    assert "at least 100" in excinfo.value.message
    assert not Platform.objects.get(pk=platform.pk).enforced
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="launch day")
    platform.refresh_from_db()
    assert platform.enforced
    assert platform.enforcement_changed_at is not None
    entry = _audit_events(platform).last().message
    assert "with too few users to tell" in entry and "launch day" in entry


def test_the_minimum_sample_is_a_setting(settings, platform, cli_actor):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "READINESS_MIN_STARTS": 10}
    OutcomeCountFactory(platform=platform, outcome="valid", count=10)
    assert readiness(platform).is_ready()
    enforcement.set_enforcement(platform, True, cli_actor)
    assert Platform.objects.get(pk=platform.pk).enforced


def test_enforcement_allowed_at_the_threshold(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=99)
    OutcomeCountFactory(platform=platform, outcome="missing", count=1)
    assert readiness(platform).valid_share == pytest.approx(0.99)
    enforcement.set_enforcement(platform, True, cli_actor)
    platform.refresh_from_db()
    assert platform.enforced


def test_starts_outside_the_readiness_window_do_not_count(platform, cli_actor):
    OutcomeCountFactory(
        platform=platform,
        outcome="invalid",
        count=1000,
        hour=(timezone.now() - timedelta(days=8)).replace(minute=0, second=0, microsecond=0),
    )
    OutcomeCountFactory(platform=platform, outcome="valid", count=100)
    assert readiness(platform).invalid == 0
    enforcement.set_enforcement(platform, True, cli_actor)
    assert Platform.objects.get(pk=platform.pk).enforced


@pytest.mark.parametrize("reason", ["", "   "])
def test_force_without_reason_is_invalid(platform, cli_actor, reason):
    OutcomeCountFactory(platform=platform, outcome="missing", count=10)
    with pytest.raises(InvalidRequest):
        enforcement.set_enforcement(platform, True, cli_actor, force=True, reason=reason)
    assert not Platform.objects.get(pk=platform.pk).enforced


def test_force_with_reason_turns_on_and_records_the_reason(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=5)
    OutcomeCountFactory(platform=platform, outcome="missing", count=95)
    reason = "old app versions are being retired today"
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason=reason)
    assert Platform.objects.get(pk=platform.pk).enforced
    entry = _audit_events(platform).last()
    assert reason in entry.message
    assert "5.0%" in entry.message
    assert (entry.actor, entry.actor_name, entry.door) == (None, "trusted-identity-cli", "cli")


def test_turning_enforcement_off(platform, cli_actor, commit):
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    with pytest.raises(SignatureRequired):
        _start(platform, {"userId": USER_ID})  # warms the cache with enforcement on
    with commit():
        enforcement.set_enforcement(platform, False, cli_actor)
    assert not Platform.objects.get(pk=platform.pk).enforced
    assert _start(platform, {"userId": USER_ID}).signature == "missing"
    assert "off" in _audit_events(platform).last().message
    # Turning it off again changes nothing and writes nothing.
    logs = _audit_events(platform).count()
    enforcement.set_enforcement(platform, False, cli_actor)
    assert _audit_events(platform).count() == logs


def test_turning_enforcement_on_reaches_a_warm_cache(platform, cli_actor, commit):
    assert _start(platform, {}).signature == "none"  # warms the cache, enforcement off
    with commit():
        enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    with pytest.raises(SignatureRequired):
        _start(platform, {"userId": USER_ID})


def test_the_refusal_counts_users_as_the_rule_does(platform, cli_actor):
    """300 starts replayed by 3 users are not enough to tell: the refusal says 3 users,
    never "300 identified session starts ..., at least 100 are needed"."""
    OutcomeCountFactory(platform=platform, outcome="valid", count=300, users=3)
    with pytest.raises(NotReady) as excinfo:
        enforcement.set_enforcement(platform, True, cli_actor)
    message = excinfo.value.message
    assert "not enough starts to tell: 3 distinct identified users" in message
    assert "(300 identified session starts)" in message and "at least 100 users" in message
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="launch day")
    assert (
        "with too few users to tell (3 identified users)" in _audit_events(platform).last().message
    )


def test_the_not_ready_share_is_of_users(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=1000, users=90)
    OutcomeCountFactory(platform=platform, outcome="invalid", count=10, users=10)
    with pytest.raises(NotReady) as excinfo:
        enforcement.set_enforcement(platform, True, cli_actor)
    assert "90.0% of 100 distinct identified users" in excinfo.value.message


# ------------------------------------------------------------ the recorded change


@pytest.mark.parametrize(
    "reason",
    [
        "hotfix for [OPS-12]",
        "line one\nline two",
        "a; b; override reason: c",
        "\"quoted\" and 'single' [x] ]",
        "Turned enforcement off. [command line]",
        "émoji 🚀 <b>not html</b>",
    ],
)
def test_the_override_reason_reads_back_verbatim(platform, cli_actor, reason):
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason=reason)
    change = enforcement.last_enforcement_changes([platform.pk])[platform.pk]
    assert change.override_reason == reason
    assert change.channel == "command line"
    assert change.who == "trusted-identity-cli"


def test_the_record_says_who_door_when_old_new_and_the_rules_figures(space, platform):
    OutcomeCountFactory(platform=platform, outcome="valid", count=5, users=5)
    OutcomeCountFactory(platform=platform, outcome="invalid", count=5, users=5)
    owner = UserFactory(username="olive")
    MembershipFactory(space=space, user=owner, role=Role.OWNER)
    admin = access.Actor.admin(owner)
    enforcement.set_enforcement(platform, True, admin, force=True, reason="launch")
    platform.refresh_from_db()
    change = PolicyChange.objects.get(platform=platform)
    assert (change.setting, change.old_value, change.new_value) == ("enforcement", "off", "on")
    assert (change.actor, change.actor_name, change.door, change.detail) == (
        owner,
        "olive",
        "admin",
        "",
    )
    assert change.at == platform.enforcement_changed_at
    assert (change.overridden, change.override_reason) == (True, "launch")
    assert change.readiness == NOT_ENOUGH_STARTS
    assert change.readiness_count == 10
    assert change.readiness_share == pytest.approx(0.5)

    enforcement.set_enforcement(platform, False, admin)
    off = PolicyChange.objects.filter(platform=platform).latest("pk")
    assert (off.old_value, off.new_value, off.overridden, off.override_reason) == (
        "on",
        "off",
        False,
        "",
    )
    assert (off.readiness, off.readiness_count, off.readiness_share) == ("", None, None)
    enforcement.set_enforcement(platform, False, admin)  # nothing changed, nothing recorded
    assert PolicyChange.objects.filter(platform=platform).count() == 2


def test_a_ready_platform_records_the_figures_without_an_override(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=150, users=150)
    enforcement.set_enforcement(platform, True, cli_actor)
    change = PolicyChange.objects.get(platform=platform)
    assert (change.overridden, change.readiness, change.readiness_count) == (False, READY, 150)
    assert change.readiness_share == pytest.approx(1.0)


def test_a_refused_change_records_nothing(platform, cli_actor):
    with pytest.raises(NotReady):
        enforcement.set_enforcement(platform, True, cli_actor)
    assert not PolicyChange.objects.exists()


def test_records_are_per_platform(space, platform, cli_actor):
    web = PlatformFactory(space=space, kind="web")
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="ios only")
    changes = enforcement.last_enforcement_changes([platform.pk, web.pk])
    assert list(changes) == [platform.pk]
    enforcement.set_enforcement(web, True, cli_actor, force=True, reason="web now")
    changes = enforcement.last_enforcement_changes([platform.pk, web.pk])
    assert (changes[platform.pk].override_reason, changes[web.pk].override_reason) == (
        "ios only",
        "web now",
    )
