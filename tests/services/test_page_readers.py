"""The two readers the settings page added to the data layer: the last enforcement
change of each platform (read back from its audit entry) and the newest failures of
many platforms in one query."""

from datetime import timedelta

from django.utils import timezone

from trusted_identity.models import FailureRecord, Role
from trusted_identity.services import access, diagnostics, enforcement

from ..factories import MembershipFactory, PlatformFactory, UserFactory


def test_last_enforcement_change_says_who_when_and_the_override_reason(space, platform):
    web = PlatformFactory(space=space, kind="web")
    user = UserFactory(username="alice")
    MembershipFactory(space=space, user=user, role=Role.ADMIN)
    admin = access.Actor.admin(user)
    enforcement.set_enforcement(
        platform, True, admin, force=True, reason="launch; 2.0 [beta] is out"
    )
    changes = enforcement.last_enforcement_changes([platform.pk, web.pk])
    assert web.pk not in changes  # never changed
    change = changes[platform.pk]
    assert change.enabled and change.user == user and change.channel == ""
    assert (change.who, change.door) == ("alice", "admin")
    assert change.override_reason == "launch; 2.0 [beta] is out"
    assert change.overridden.startswith("with too few users to tell")
    assert timezone.now() - change.at < timedelta(minutes=1)
    cli = access.get_cli_actor()
    enforcement.set_enforcement(platform, False, cli)
    change = enforcement.last_enforcement_changes([platform.pk])[platform.pk]
    assert not change.enabled and change.override_reason == ""
    assert change.channel.startswith("command line")
    assert (change.who, change.door, change.user) == ("trusted-identity-cli", "cli", None)
    assert enforcement.last_enforcement_changes([]) == {}


def test_recent_failures_for_many_platforms_in_one_query(
    space, platform, django_assert_num_queries
):
    web = PlatformFactory(space=space, kind="web")
    now = timezone.now()
    for i in range(5):
        for p in (platform, web):
            FailureRecord.objects.create(
                platform=p,
                at=now - timedelta(minutes=i),
                outcome="invalid",
                reason="no_match",
                user_id=f"{p.kind}-{i}",
            )
    with django_assert_num_queries(1):
        found = diagnostics.recent_failures_for([platform.pk, web.pk], limit=3)
    assert [r.user_id for r in found[platform.pk]] == ["ios-0", "ios-1", "ios-2"]
    assert [r.user_id for r in found[web.pk]] == ["web-0", "web-1", "web-2"]
    assert diagnostics.recent_failures_for([]) == {}
