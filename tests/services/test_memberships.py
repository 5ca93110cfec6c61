"""Granting and revoking roles in a space.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import pytest

from trusted_identity import services
from trusted_identity.exceptions import (
    InvalidRequest,
    PermissionDenied,
    UserNotFound,
)
from trusted_identity.models import (
    Role,
    SpaceMembership,
)

from ..factories import (
    MembershipFactory,
    UserFactory,
)
from .helpers import _logs


def test_grant_regrant_and_revoke(platform, cli_actor):
    user = UserFactory(username="dana", is_staff=False)
    membership = services.grant(platform.space, "dana", Role.VIEWER, cli_actor)
    user.refresh_from_db()
    assert user.is_staff
    assert membership.role == Role.VIEWER
    actor = services.Actor.admin(user)
    with pytest.raises(PermissionDenied):
        services.reveal_secret(platform, actor)

    services.grant(platform.space, "dana", Role.ADMIN, cli_actor)
    assert SpaceMembership.objects.filter(user=user).count() == 1
    assert SpaceMembership.objects.get(user=user).role == Role.ADMIN
    assert services.reveal_secret(platform, actor).startswith("tis_ios_")

    services.revoke(platform.space, "dana", cli_actor)
    assert not SpaceMembership.objects.filter(user=user).exists()
    with pytest.raises(PermissionDenied):
        services.reveal_secret(platform, actor)
    messages = " ".join(_logs(platform.space).values_list("change_message", flat=True))
    assert "Granted dana the viewer role" in messages and "Revoked dana" in messages


def test_grant_and_revoke_unknown_user(space, cli_actor):
    with pytest.raises(UserNotFound):
        services.grant(space, "nobody", Role.ADMIN, cli_actor)
    with pytest.raises(UserNotFound):
        services.revoke(space, "nobody", cli_actor)
    UserFactory(username="eve")
    with pytest.raises(UserNotFound):
        services.revoke(space, "eve", cli_actor)  # exists, but not a member
    with pytest.raises(InvalidRequest):
        services.grant(space, "eve", "superhero", cli_actor)
    assert not SpaceMembership.objects.exists()


def test_only_owners_manage_members(space):
    admin = UserFactory()
    MembershipFactory(space=space, user=admin, role=Role.ADMIN)
    owner = UserFactory()
    MembershipFactory(space=space, user=owner, role=Role.OWNER)
    UserFactory(username="frank", is_staff=False)
    with pytest.raises(PermissionDenied):
        services.grant(space, "frank", Role.OWNER, services.Actor.admin(admin))
    assert not SpaceMembership.objects.filter(user__username="frank").exists()
    services.grant(space, "frank", Role.VIEWER, services.Actor.admin(owner))
    assert SpaceMembership.objects.get(user__username="frank").role == Role.VIEWER
