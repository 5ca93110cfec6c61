"""The command line's memberships and actors: grant and revoke, the last owner, and
--actor checked against the role table.
"""

import json

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from trusted_identity import signing
from trusted_identity.models import (
    Platform,
    Space,
    SpaceMembership,
)
from trusted_identity.services import access

from . import hardening
from .factories import PlatformFactory, SpaceFactory, UserFactory
from .test_cli import audit_events_for, fails, run, secret_of, value_of, verifies  # noqa: F401

# ------------------------------------------------------------------ grant, revoke


def test_grant_makes_staff_with_the_role(space):
    bob = UserFactory(username="bob", is_staff=False)
    out, err = run("grant", "acme", "bob", "--role", "viewer")
    assert out == ""
    assert "viewer" in err
    bob.refresh_from_db()
    assert bob.is_staff
    assert SpaceMembership.objects.get(space=space, user=bob).role == "viewer"
    assert access.can(bob, "view", space)
    assert not access.can(bob, "reveal", space)

    run("grant", "acme", "bob", "--role", "admin")
    assert SpaceMembership.objects.get(space=space, user=bob).role == "admin"
    assert access.can(bob, "rotate", space)
    assert "Granted bob the admin role" in audit_events_for(space).last().message


def test_grant_unknown_user(space):
    fails("grant", "acme", "nobody", "--role", "owner", match="nobody")
    assert not SpaceMembership.objects.exists()


def test_grant_unknown_role(space):
    UserFactory(username="bob", is_staff=False)
    fails("grant", "acme", "bob", "--role", "god", match="god|choice")
    assert not SpaceMembership.objects.exists()
    assert not get_user_model().objects.get(username="bob").is_staff


def test_grant_unknown_space(db):
    UserFactory(username="bob")
    fails("grant", "nope", "bob", "--role", "owner", match="nope")


def test_revoke(space):
    UserFactory(username="bob")
    UserFactory(username="carol")
    run("grant", "acme", "carol", "--role", "owner")  # the space keeps an owner
    run("grant", "acme", "bob", "--role", "owner")
    out, err = run("revoke", "acme", "bob")
    assert out == ""
    assert "no longer" in err
    assert not SpaceMembership.objects.filter(user__username="bob").exists()
    fails("revoke", "acme", "bob", match="not a member")


def test_grant_and_revoke_say_when_staff_status_changes(space):
    """Issue 9, finding 6: grant says it made the user staff (stderr), and revoking the
    last membership takes back that, and only that."""
    UserFactory(username="bob", is_staff=False)
    UserFactory(username="carol", is_staff=True)
    out, err = run("grant", "acme", "bob", "--role", "viewer")
    assert out == "" and "now staff" in err
    out, err = run("grant", "acme", "carol", "--role", "viewer")
    assert out == "" and "staff" not in err  # she already was
    out, err = run("revoke", "acme", "bob")
    assert out == "" and "no longer staff" in err
    assert not get_user_model().objects.get(username="bob").is_staff
    out, err = run("revoke", "acme", "carol")
    assert out == "" and "staff" not in err
    assert get_user_model().objects.get(username="carol").is_staff


def test_revoke_or_demote_the_last_owner_is_refused(space):
    UserFactory(username="bob")
    run("grant", "acme", "bob", "--role", "owner")
    fails("revoke", "acme", "bob", match="last owner")
    fails("grant", "acme", "bob", "--role", "admin", match="last owner")
    assert SpaceMembership.objects.get(user__username="bob").role == "owner"


# ------------------------------------------------------------------------- actors


def test_actor_is_named_in_the_audit(platform, superuser):
    run("--actor", "root", "show-secret", "acme", "ios")
    entry = audit_events_for(platform).last()
    assert entry.actor == superuser
    assert "Revealed" in entry.message


def test_default_actor_is_the_cli_with_no_user_row(platform):
    run("show-secret", "acme", "ios")
    event = audit_events_for(platform).last()
    assert (event.actor, event.actor_name, event.door) == (None, "trusted-identity-cli", "cli")
    assert not get_user_model().objects.filter(username="trusted-identity-cli").exists()


def test_an_existing_cli_account_is_left_alone(platform, settings):
    """Sites that ran the CLI before kept its user row: it is neither used nor deleted."""
    old = UserFactory(username="trusted-identity-cli", is_active=False)
    run("show-secret", "acme", "ios")
    assert audit_events_for(platform).last().actor is None
    assert get_user_model().objects.filter(pk=old.pk).exists()
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "CLI_ACTOR_USERNAME": "ops-cli"}
    run("show-secret", "acme", "ios")
    assert audit_events_for(platform).last().actor_name == "ops-cli"


def test_unknown_actor(platform):
    old = secret_of(platform)
    fails("--actor", "ghost", "rotate-secret", "acme", "ios", match="ghost")
    assert secret_of(platform) == old


def _member(space, username, role):
    user = UserFactory(username=username)
    SpaceMembership.objects.create(space=space, user=user, role=role)
    return user


def test_a_named_actor_needs_a_role_allowing_the_action(platform, space):
    """Issue 9, finding 7: main accepted any --actor and wrote entries naming them."""
    _member(space, "vera", "viewer")
    outsider = UserFactory(username="otto")
    SpaceMembership.objects.create(
        space=PlatformFactory(kind="web").space, user=outsider, role="owner"
    )
    UserFactory(username="bob")
    old = secret_of(platform)
    entries = LogEntry.objects.count()
    for actor in ("vera", "otto"):
        for args in (
            ("show-secret", "acme", "ios"),
            ("rotate-secret", "acme", "ios", "--grace", "1h"),
            ("enforce", "acme", "ios", "on", "--force", "--reason", "x"),
            ("sign", "acme", "ios", "42"),
            ("add-platform", "acme", "web"),
            ("grant", "acme", "bob", "--role", "viewer"),
            ("revoke", "acme", "vera"),
            ("create-space", "mine"),
            ("rekey",),
        ):
            fails("--actor", actor, *args, match=f"{actor} may not")
    fails("--actor", "otto", "status", "acme", match="otto may not")  # vera may view
    assert LogEntry.objects.count() == entries
    assert secret_of(platform) == old
    assert not Platform.objects.get(pk=platform.pk).enforced
    assert not Space.objects.filter(slug="mine").exists()
    assert SpaceMembership.objects.filter(user__username="vera").exists()


def test_a_named_actor_may_do_what_their_role_allows(platform, space):
    ada = _member(space, "ada", "admin")
    out, _ = run("--actor", "ada", "show-secret", "acme", "ios")
    assert value_of(out).startswith("tis_ios_")
    assert audit_events_for(platform).last().actor == ada
    run("--actor", "ada", "rotate-secret", "acme", "ios", "--grace", "1h")
    assert audit_events_for(platform).last().actor == ada
    signed = value_of(run("--actor", "ada", "sign", "acme", "ios", "7")[0])
    assert signed == signing.sign(secret_of(platform), "7")
    # An admin doesn't manage members; an owner does.
    UserFactory(username="bob")
    fails("--actor", "ada", "grant", "acme", "bob", "--role", "viewer", match="ada may not")
    _member(space, "olga", "owner")
    run("--actor", "olga", "grant", "acme", "bob", "--role", "viewer")
    assert audit_events_for(space).last().actor_name == "olga"


def test_a_named_actor_sees_only_their_spaces_in_status(platform, space):
    PlatformFactory(space=SpaceFactory(slug="beta"), kind="web")
    _member(space, "vera", "viewer")
    data = json.loads(value_of(run("--actor", "vera", "status", "--json")[0]))
    assert [s["slug"] for s in data["spaces"]] == ["acme"]
    fails("--actor", "vera", "status", "beta", match="vera may not")
    # The CLI's own account, and superusers, see every space.
    UserFactory(username="root", is_superuser=True)
    for actor in ((), ("--actor", "root"), ("--actor", "trusted-identity-cli")):
        data = json.loads(value_of(run(*actor, "status", "--json")[0]))
        assert [s["slug"] for s in data["spaces"]] == ["acme", "beta"]


def test_an_inactive_actor_is_refused_even_as_owner(platform, space):
    former = _member(space, "gone", "owner")
    former.is_active = False
    former.save()
    fails("--actor", "gone", "show-secret", "acme", "ios", match="gone may not")


def test_naming_the_clis_own_account_is_the_default(platform):
    run("--actor", "trusted-identity-cli", "show-secret", "acme", "ios")
    assert audit_events_for(platform).last().actor_name == "trusted-identity-cli"


def test_sign_is_audited_without_the_signature(platform, superuser):
    before = audit_events_for(platform).count()
    signed = value_of(run("sign", "acme", "ios", "--", "user-42")[0])
    signed_as_root = value_of(run("--actor", "root", "sign", "acme", "ios", "Zoë")[0])
    entries = list(audit_events_for(platform))[before:]
    assert len(entries) == 2
    assert entries[0].actor_name == "trusted-identity-cli"
    assert entries[1].actor == superuser
    assert "'user-42'" in entries[0].message and "'Zoë'" in entries[1].message
    assert entries[0].detail.startswith("command line")
    for entry in entries:
        assert entry.object_repr == "acme/ios"
        for text in (signed, signed_as_root, secret_of(platform)):
            assert text not in entry.message and text not in entry.object_repr
    assert not any(
        text in record for record in hardening.LOG.texts for text in (signed, signed_as_root)
    )


def test_the_sign_view_writes_no_audit_entry(client, platform, settings):
    user = UserFactory(username="viewer-of-sign")
    client.force_login(user)
    before = LogEntry.objects.count()
    for _ in range(3):
        response = client.get("/trusted-identity/sign/", {"platform": "ios", "space": "acme"})
        assert response.status_code == 200
    assert LogEntry.objects.count() == before


def test_missing_subcommand(db):
    fails(match="required|subcommand")


def test_unknown_subcommand(db):
    fails("explode", match="explode|choice")
