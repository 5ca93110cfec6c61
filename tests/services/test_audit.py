"""Every reveal, rotation and toggle is audited, without the secret.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from trusted_identity import services
from trusted_identity.models import (
    Platform,
)


def test_reveal_rotate_and_toggle_are_audited_without_the_secret(platform, cli_actor, caplog):
    caplog.set_level("DEBUG")
    seen = []
    platform_type = ContentType.objects.get_for_model(Platform)

    def _one_new_entry(before, word):
        entries = list(LogEntry.objects.filter(pk__gt=before))
        assert len(entries) == 1
        entry = entries[0]
        assert entry.content_type_id == platform_type.pk
        assert entry.object_id == str(platform.pk)
        assert entry.user_id == cli_actor.user.pk
        assert word in entry.change_message.lower()
        return entry.pk

    last = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    seen.append(services.reveal_secret(platform, cli_actor))
    last = _one_new_entry(last, "reveal")
    seen.append(services.rotate_secret(platform, cli_actor))
    last = _one_new_entry(last, "rotate")
    seen.append(services.rotate_secret(platform, cli_actor, grace=timedelta(0)))
    last = _one_new_entry(last, "rotate")
    services.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    last = _one_new_entry(last, "on")
    services.set_enforcement(platform, False, cli_actor)
    last = _one_new_entry(last, "off")
    seen.append(services.reveal_secret(platform, cli_actor))
    _one_new_entry(last, "reveal")

    entries = list(LogEntry.objects.values_list("object_repr", "change_message"))
    text = repr(entries) + caplog.text
    assert "Revealed" in caplog.text  # the audit log line was written
    for secret in seen:
        assert secret not in text
        assert secret[len("tis_ios_") :] not in text
