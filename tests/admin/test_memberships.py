"""The memberships' admin (``trusted_identity.admin.memberships``): grants, role changes
and revocations go through services and are audited on the space.
"""

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from trusted_identity.models import Space, SpaceMembership

from ..factories import UserFactory
from .helpers import messages_of


def test_owner_grants_changes_and_revokes_through_services(owner_client, space, owner):
    newbie = UserFactory(username="newbie", is_staff=False)
    add = owner_client.post(
        reverse("admin:trusted_identity_spacemembership_add"),
        {"space": space.pk, "username": "newbie", "role": "viewer"},
    )
    assert add.status_code == 302
    membership = SpaceMembership.objects.get(space=space, user=newbie)
    newbie.refresh_from_db()
    assert membership.role == "viewer" and newbie.is_staff
    space_log = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Space), object_id=str(space.pk)
    ).order_by("pk")
    granted = space_log.last().get_change_message()
    assert granted.startswith("Granted newbie the viewer role. Made them staff")

    change_url = reverse("admin:trusted_identity_spacemembership_change", args=[membership.pk])
    owner_client.post(change_url, {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    assert space_log.last().get_change_message() == "Granted newbie the admin role."

    delete_url = reverse("admin:trusted_identity_spacemembership_delete", args=[membership.pk])
    owner_client.post(delete_url, {"post": "yes"})
    assert not SpaceMembership.objects.filter(pk=membership.pk).exists()
    assert space_log.last().get_change_message().startswith("Revoked newbie's membership.")
    newbie.refresh_from_db()
    assert not newbie.is_staff  # the grant made them staff; their last revocation took it back
    # Services wrote the entries; the admin added none of its own on memberships.
    assert not LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(SpaceMembership)
    ).exists()


def test_granting_an_unknown_username_is_a_form_error(owner_client, space):
    response = owner_client.post(
        reverse("admin:trusted_identity_spacemembership_add"),
        {"space": space.pk, "username": "ghost", "role": "viewer"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["username"]


def test_the_last_owner_cant_be_removed_or_demoted_in_the_admin(owner_client, space, owner):
    """The service refuses; the admin says so instead of failing, and nothing changes."""
    membership = SpaceMembership.objects.get(space=space, user=owner)
    change_url = reverse("admin:trusted_identity_spacemembership_change", args=[membership.pk])
    demoted = owner_client.post(change_url, {"role": "viewer"}, follow=True)
    assert demoted.status_code == 200
    assert any("last owner" in m for m in messages_of(demoted))
    membership.refresh_from_db()
    assert membership.role == "owner"

    delete_url = reverse("admin:trusted_identity_spacemembership_delete", args=[membership.pk])
    removed = owner_client.post(delete_url, {"post": "yes"}, follow=True)
    assert removed.status_code == 200
    assert any("last owner" in m for m in messages_of(removed))
    assert SpaceMembership.objects.filter(pk=membership.pk).exists()

    changelist = reverse("admin:trusted_identity_spacemembership_changelist")
    bulk = owner_client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [membership.pk], "post": "yes"},
        follow=True,
    )
    assert bulk.status_code == 200
    assert any("last owner" in m for m in messages_of(bulk))
    assert SpaceMembership.objects.filter(pk=membership.pk).exists()
