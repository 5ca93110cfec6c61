"""The read-only audit trail and policy history in the admin: scoped to the user's
spaces, nothing added, changed or deleted by hand."""

import pytest
from django.urls import reverse

from trusted_identity.models import AuditEvent, PolicyChange, Role
from trusted_identity.services import access, enforcement

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory

EVENTS = "admin:trusted_identity_auditevent_changelist"
CHANGES = "admin:trusted_identity_policychange_changelist"


@pytest.fixture
def viewer_client(client, space):
    viewer = UserFactory(is_staff=True)
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    return client


def _world(platform):
    theirs = PlatformFactory(space=SpaceFactory(slug="theirs"), kind="web")
    cli = access.get_cli_actor()
    for each in (platform, theirs):
        enforcement.set_enforcement(each, True, cli, force=True, reason=f"reason of {each.space}")
    return theirs


def test_a_viewer_sees_the_records_of_their_spaces_only(viewer_client, space, platform):
    theirs = _world(platform)
    for url in (EVENTS, CHANGES):
        body = viewer_client.get(reverse(url)).content.decode()
        assert "trusted-identity-cli" in body
        assert "theirs" not in body
    event = AuditEvent.objects.get(platform=theirs)
    change = PolicyChange.objects.get(platform=theirs)
    for name, obj in (("auditevent", event), ("policychange", change)):
        url = reverse(f"admin:trusted_identity_{name}_change", args=[obj.pk])
        assert viewer_client.get(url).status_code in (302, 404)  # not theirs to see
    mine = PolicyChange.objects.get(platform=platform)
    url = reverse("admin:trusted_identity_policychange_change", args=[mine.pk])
    response = viewer_client.get(url)
    assert response.status_code == 200
    assert "reason of" in response.content.decode()


def test_nothing_is_added_changed_or_deleted_by_hand(owner_client, space, platform):
    _world(platform)
    mine = PolicyChange.objects.get(platform=platform)
    assert owner_client.get(reverse("admin:trusted_identity_policychange_add")).status_code == 403
    delete = reverse("admin:trusted_identity_policychange_delete", args=[mine.pk])
    assert owner_client.post(delete, {"post": "yes"}).status_code == 403
    change = reverse("admin:trusted_identity_policychange_change", args=[mine.pk])
    owner_client.post(change, {"override_reason": "rewritten"})
    mine.refresh_from_db()
    assert mine.override_reason == "reason of Acme"
