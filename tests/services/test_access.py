"""Who may do what: superusers, each role, and every way to be denied.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import pytest

from trusted_identity.exceptions import (
    PermissionDenied,
)
from trusted_identity.models import (
    Platform,
    PlatformSecret,
    Role,
)
from trusted_identity.services import access, enforcement, platform_secrets

from ..factories import (
    MembershipFactory,
    SpaceFactory,
    UserFactory,
)
from .helpers import _audit_events, _secret

OPERATIONS = {
    "reveal": lambda platform, actor: platform_secrets.reveal_secret(platform, actor),
    "rotate": lambda platform, actor: platform_secrets.rotate_secret(platform, actor),
    "enforce": lambda platform, actor: enforcement.set_enforcement(
        platform, True, actor, force=True, reason="test"
    ),
}


def _state(platform):
    return (
        list(PlatformSecret.objects.filter(platform=platform).values_list("pk", "ciphertext")),
        Platform.objects.get(pk=platform.pk).enforced,
        _audit_events(platform).count(),
    )


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_superuser_may_do_everything(platform, superuser, operation):
    before = _state(platform)
    OPERATIONS[operation](platform, access.Actor.admin(superuser))
    after = _state(platform)
    assert after[2] == before[2] + 1  # audited
    assert after != before


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_and_admin_may_reveal_rotate_and_enforce(platform, cli_actor, role):
    user = UserFactory()
    MembershipFactory(space=platform.space, user=user, role=role)
    actor = access.Actor.admin(user)
    assert platform_secrets.reveal_secret(platform, actor) == _secret(platform, cli_actor)
    new = platform_secrets.rotate_secret(platform, actor)
    assert _secret(platform, cli_actor) == new
    enforcement.set_enforcement(platform, True, actor, force=True, reason="test")
    assert Platform.objects.get(pk=platform.pk).enforced
    assert _audit_events(platform).filter(actor=user).count() == 3


def _viewer(space):
    user = UserFactory()
    MembershipFactory(space=space, user=user, role=Role.VIEWER)
    return user


def _owner_elsewhere(space):
    user = UserFactory()
    MembershipFactory(space=SpaceFactory(), user=user, role=Role.OWNER)
    return user


def _non_staff_owner(space):
    user = UserFactory(is_staff=False)
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


def _inactive_owner(space):
    user = UserFactory(is_active=False)
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


@pytest.mark.parametrize(
    "make_user",
    [_viewer, _owner_elsewhere, _non_staff_owner, _inactive_owner],
    ids=["viewer", "owner-of-another-space", "non-staff-owner", "inactive-owner"],
)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_denied(platform, make_user, operation):
    actor = access.Actor.admin(make_user(platform.space))
    before = _state(platform)
    with pytest.raises(PermissionDenied):
        OPERATIONS[operation](platform, actor)
    assert _state(platform) == before


def test_viewer_sees_figures_only(platform):
    user = _viewer(platform.space)
    assert access.can(user, "view", platform.space)
    assert not access.can(user, "reveal", platform.space)
    assert list(access.spaces_visible_to(user)) == [platform.space]
    assert list(access.spaces_visible_to(_owner_elsewhere(platform.space))) != [platform.space]
