"""Granting and revoking roles in a space.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from trusted_identity.exceptions import (
    InvalidRequest,
    PermissionDenied,
    UserNotFound,
)
from trusted_identity.models import (
    Role,
    Space,
    SpaceMembership,
    StaffGrant,
)
from trusted_identity.services import access, memberships, platform_secrets

from ..factories import (
    MembershipFactory,
    SpaceFactory,
    SuperuserFactory,
    UserFactory,
)
from .helpers import _audit_events


def test_grant_regrant_and_revoke(platform, cli_actor):
    user = UserFactory(username="dana", is_staff=False)
    membership = memberships.grant(platform.space, "dana", Role.VIEWER, cli_actor)
    user.refresh_from_db()
    assert user.is_staff
    assert membership.role == Role.VIEWER
    actor = access.Actor.admin(user)
    with pytest.raises(PermissionDenied):
        platform_secrets.reveal_secret(platform, actor)

    memberships.grant(platform.space, "dana", Role.ADMIN, cli_actor)
    assert SpaceMembership.objects.filter(user=user).count() == 1
    assert SpaceMembership.objects.get(user=user).role == Role.ADMIN
    assert platform_secrets.reveal_secret(platform, actor).startswith("tis_ios_")

    memberships.revoke(platform.space, "dana", cli_actor)
    assert not SpaceMembership.objects.filter(user=user).exists()
    with pytest.raises(PermissionDenied):
        platform_secrets.reveal_secret(platform, actor)
    messages = " ".join(_audit_events(platform.space).values_list("message", flat=True))
    assert "Granted dana the viewer role" in messages and "Revoked dana" in messages


def test_grant_and_revoke_unknown_user(space, cli_actor):
    with pytest.raises(UserNotFound):
        memberships.grant(space, "nobody", Role.ADMIN, cli_actor)
    with pytest.raises(UserNotFound):
        memberships.revoke(space, "nobody", cli_actor)
    UserFactory(username="eve")
    with pytest.raises(UserNotFound):
        memberships.revoke(space, "eve", cli_actor)  # exists, but not a member
    with pytest.raises(InvalidRequest):
        memberships.grant(space, "eve", "superhero", cli_actor)
    assert not SpaceMembership.objects.exists()


def test_only_owners_manage_members(space):
    admin = UserFactory()
    MembershipFactory(space=space, user=admin, role=Role.ADMIN)
    owner = UserFactory()
    MembershipFactory(space=space, user=owner, role=Role.OWNER)
    UserFactory(username="frank", is_staff=False)
    with pytest.raises(PermissionDenied):
        memberships.grant(space, "frank", Role.OWNER, access.Actor.admin(admin))
    assert not SpaceMembership.objects.filter(user__username="frank").exists()
    memberships.grant(space, "frank", Role.VIEWER, access.Actor.admin(owner))
    assert SpaceMembership.objects.get(user__username="frank").role == Role.VIEWER


def _staff(username):
    return get_user_model().objects.get(username=username).is_staff


def _messages(obj):
    return " ".join(_audit_events(obj).values_list("message", flat=True))


def test_grant_says_when_it_makes_staff_and_the_last_revoke_takes_it_back(space, cli_actor):
    """Issue 9, finding 6: main left the account staff after its last membership."""
    other = SpaceFactory(slug="other")
    dana = UserFactory(username="dana", is_staff=False)
    first = memberships.grant(space, "dana", Role.VIEWER, cli_actor)
    assert first.made_staff is True
    assert _staff("dana") and StaffGrant.objects.filter(user=dana).exists()
    assert "Made them staff" in _messages(space)
    assert "Made staff by a grant" in _messages(dana)

    second = memberships.grant(other, "dana", Role.ADMIN, cli_actor)
    assert second.made_staff is False
    again = memberships.grant(space, "dana", Role.ADMIN, cli_actor)  # a role change
    assert again.made_staff is False

    assert memberships.revoke(space, "dana", cli_actor) is False  # a membership is left
    assert _staff("dana")
    assert memberships.revoke(other, "dana", cli_actor) is True
    assert not _staff("dana")
    assert not StaffGrant.objects.filter(user=dana).exists()
    assert "took back the staff status" in _messages(other)
    assert "took back" not in _messages(space)
    assert "taken back" in _messages(dana)

    # A later grant makes them staff again, and says so again.
    assert memberships.grant(space, "dana", Role.VIEWER, cli_actor).made_staff is True
    assert _staff("dana")


def test_revoke_leaves_staff_status_they_had_before(space, cli_actor):
    erin = UserFactory(username="erin", is_staff=True)
    assert memberships.grant(space, "erin", Role.ADMIN, cli_actor).made_staff is False
    assert not StaffGrant.objects.filter(user=erin).exists()
    assert "Made them staff" not in _messages(space)
    assert memberships.revoke(space, "erin", cli_actor) is False
    assert _staff("erin")
    assert "took back" not in _messages(space)


def test_revoke_never_takes_staff_from_a_superuser(space, cli_actor):
    SuperuserFactory(username="sam", is_staff=False)
    assert memberships.grant(space, "sam", Role.VIEWER, cli_actor).made_staff is True
    get_user_model().objects.filter(username="sam").update(is_superuser=True)
    assert memberships.revoke(space, "sam", cli_actor) is False
    assert _staff("sam")


def test_the_last_owner_can_not_be_removed_or_demoted(space, cli_actor, superuser):
    UserFactory(username="olga")
    UserFactory(username="oscar")
    memberships.grant(space, "olga", Role.OWNER, cli_actor)
    entries = _audit_events(space).count()
    for attempt in (
        lambda: memberships.revoke(space, "olga", cli_actor),
        lambda: memberships.grant(space, "olga", Role.ADMIN, cli_actor),
        lambda: memberships.grant(space, "olga", Role.VIEWER, access.Actor.admin(superuser)),
        lambda: memberships.revoke(space, "olga", access.Actor.admin(superuser)),
    ):
        with pytest.raises(InvalidRequest) as info:
            attempt()
        assert "last owner" in info.value.message and "olga" in info.value.message
    assert SpaceMembership.objects.get(space=space, user__username="olga").role == Role.OWNER
    assert _audit_events(space).count() == entries  # refusals change nothing, audit nothing

    # Re-granting owner to the last owner is no demotion.
    memberships.grant(space, "olga", Role.OWNER, cli_actor)
    # With a second owner, either may go, but not both.
    memberships.grant(space, "oscar", Role.OWNER, cli_actor)
    memberships.grant(space, "olga", Role.ADMIN, cli_actor)
    with pytest.raises(InvalidRequest):
        memberships.revoke(space, "oscar", cli_actor)
    memberships.revoke(space, "olga", cli_actor)
    assert list(SpaceMembership.objects.filter(space=space).values_list("role", flat=True)) == [
        Role.OWNER
    ]


def test_an_owner_may_remove_themself_only_when_another_owner_is_left(space, cli_actor):
    olga = UserFactory(username="olga")
    UserFactory(username="oscar")
    memberships.grant(space, "olga", Role.OWNER, cli_actor)
    with pytest.raises(InvalidRequest):
        memberships.revoke(space, "olga", access.Actor.admin(olga))
    memberships.grant(space, "oscar", Role.OWNER, access.Actor.admin(olga))
    memberships.revoke(space, "olga", access.Actor.admin(olga))
    assert not SpaceMembership.objects.filter(space=space, user=olga).exists()


def test_a_space_without_owners_may_lose_its_other_members(space, cli_actor):
    UserFactory(username="ada")
    memberships.grant(space, "ada", Role.ADMIN, cli_actor)
    memberships.grant(space, "ada", Role.VIEWER, cli_actor)
    memberships.revoke(space, "ada", cli_actor)
    assert not SpaceMembership.objects.exists()


def _race(space_pk, changes):
    """Run the (username, "revoke"|"demote") changes at the same moment; their outcomes."""
    actor = access.get_cli_actor()
    barrier = threading.Barrier(len(changes))
    outcomes = {}

    def change(name, how):
        try:
            barrier.wait(timeout=10)
            target = Space.objects.get(pk=space_pk)
            if how == "revoke":
                memberships.revoke(target, name, actor)
            else:
                memberships.grant(target, name, Role.VIEWER, actor)
            outcomes[name] = "done"
        except InvalidRequest:
            outcomes[name] = "refused"
        except Exception as exc:  # pragma: no cover - shown in the assertion
            outcomes[name] = repr(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=change, args=item) for item in changes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["revoke", "demote"])
def test_concurrent_removals_keep_the_last_owner(second):
    """Two owners removed (or demoted) at the same moment: one change wins, the other is
    refused, and the space keeps an owner. The space's row lock serialises them."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks; runs in `make test-postgres`")
    actor = access.get_cli_actor()
    for round_ in range(5):
        space = SpaceFactory(slug=f"race-{second}-{round_}")
        for name in ("p", "q"):
            UserFactory(username=f"{name}{round_}")
            memberships.grant(space, f"{name}{round_}", Role.OWNER, actor)
        outcomes = _race(space.pk, [(f"p{round_}", "revoke"), (f"q{round_}", second)])
        assert sorted(outcomes.values()) == ["done", "refused"], outcomes
        owners = SpaceMembership.objects.filter(space=space, role=Role.OWNER).count()
        assert owners == 1
