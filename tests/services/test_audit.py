"""Every reveal, rotation and toggle is audited, without the secret, whoever did it:
an ``AuditEvent`` row always, a ``LogEntry`` in the admin's history when the actor is a
user, and a ``PolicyChange`` record for a gated setting, read back by
``last_policy_changes``.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from trusted_identity.models import AuditEvent, PolicyChange, PolicySetting, Role
from trusted_identity.services import access, enforcement, platform_secrets, signature_forms
from trusted_identity.services.audit import last_policy_changes

from ..factories import MembershipFactory, PlatformFactory, UserFactory


def test_reveal_rotate_and_toggle_are_audited_without_the_secret(platform, cli_actor, caplog):
    caplog.set_level("DEBUG")
    seen = []

    def _one_new_event(before, action, word):
        events = list(AuditEvent.objects.filter(pk__gt=before))
        assert len(events) == 1
        event = events[0]
        assert (event.space_id, event.platform_id) == (platform.space_id, platform.pk)
        assert (event.object_label, event.object_id) == (
            "trusted_identity.Platform",
            str(platform.pk),
        )
        assert (event.actor, event.actor_name, event.door) == (None, "trusted-identity-cli", "cli")
        assert event.detail == "command line"
        assert event.action == action
        assert word in event.message.lower()
        return event.pk

    last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    seen.append(platform_secrets.reveal_secret(platform, cli_actor))
    last = _one_new_event(last, "reveal", "reveal")
    seen.append(platform_secrets.rotate_secret(platform, cli_actor))
    last = _one_new_event(last, "rotate", "rotate")
    platform_secrets.revoke_previous(platform, cli_actor)
    last = _one_new_event(last, "end_grace", "grace")
    seen.append(platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(0)))
    last = _one_new_event(last, "rotate", "rotate")
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    last = _one_new_event(last, "enforcement", "on")
    enforcement.set_enforcement(platform, False, cli_actor)
    last = _one_new_event(last, "enforcement", "off")
    seen.append(platform_secrets.reveal_secret(platform, cli_actor))
    _one_new_event(last, "reveal", "reveal")

    assert not LogEntry.objects.exists()  # the CLI's own actor has no user for one
    events = list(AuditEvent.objects.values_list("object_repr", "message"))
    text = repr(events) + caplog.text
    assert "Revealed" in caplog.text  # the audit log line was written
    assert "by trusted-identity-cli" in caplog.text
    for secret in seen:
        assert secret not in text
        assert secret[len("tis_ios_") :] not in text


def test_an_admin_user_gets_the_event_and_the_log_entry(platform):
    owner = UserFactory(username="olive")
    MembershipFactory(space=platform.space, user=owner, role=Role.OWNER)
    platform_secrets.reveal_secret(platform, access.Actor.admin(owner))
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_name, event.door, event.detail) == (
        owner,
        "olive",
        "admin",
        "",
    )
    entry = LogEntry.objects.get()
    assert (entry.user, entry.object_id) == (owner, str(platform.pk))
    assert entry.change_message == event.message == "Revealed the current secret."


def test_the_cli_writes_no_user_row(platform):
    users = get_user_model().objects.count()
    actor = access.get_cli_actor(os_user="deploy")
    assert (actor.user, actor.display_name, actor.trusted) == (None, "trusted-identity-cli", True)
    platform_secrets.reveal_secret(platform, actor)
    platform_secrets.rotate_secret(platform, actor)
    enforcement.set_enforcement(platform, True, actor, force=True, reason="r")
    signature_forms.set_signature_form(platform, "either", actor)
    assert get_user_model().objects.count() == users
    assert AuditEvent.objects.filter(detail="command line, OS user deploy").count() == 4


def test_a_deleted_user_keeps_their_name_in_the_records(platform):
    owner = UserFactory(username="leaver")
    MembershipFactory(space=platform.space, user=owner, role=Role.OWNER)
    enforcement.set_enforcement(platform, True, access.Actor.admin(owner), force=True, reason="r")
    owner.delete()
    event = AuditEvent.objects.get()
    change = PolicyChange.objects.get()
    assert (event.actor, event.actor_name) == (None, "leaver")
    assert (change.actor, change.actor_name, change.door) == (None, "leaver", "admin")
    assert enforcement.last_enforcement_changes([platform.pk])[platform.pk].who == "leaver"


def test_latest_policy_change_per_platform_and_setting(
    space, platform, cli_actor, django_assert_num_queries
):
    web = PlatformFactory(space=space, kind="web")
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="first")
    enforcement.set_enforcement(platform, False, cli_actor)
    enforcement.set_enforcement(web, True, cli_actor, force=True, reason="web's own")
    signature_forms.set_signature_form(platform, "either", cli_actor)
    ids = [platform.pk, web.pk]
    with django_assert_num_queries(1):
        latest = last_policy_changes(ids, [PolicySetting.ENFORCEMENT])
    assert (latest[platform.pk].new_value, latest[platform.pk].override_reason) == ("off", "")
    assert (latest[web.pk].new_value, latest[web.pk].override_reason) == ("on", "web's own")
    forms = last_policy_changes(ids, [PolicySetting.SIGNATURE_FORM])
    assert list(forms) == [platform.pk]
    assert (forms[platform.pk].old_value, forms[platform.pk].new_value) == ("plain", "either")
    assert last_policy_changes([], [PolicySetting.ENFORCEMENT]) == {}
