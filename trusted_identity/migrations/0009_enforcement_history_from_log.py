"""Carry the enforcement history written before ``PolicyChange`` into it.

Until 0008, who turned enforcement on or off, and with what override reason, was
only in the prose of the admin's ``LogEntry`` rows ("Turned enforcement on below the
readiness threshold (12.50% valid); override reason: ... [command line, OS user x]").
This reads that prose once, with the patterns that wrote it, into ``PolicyChange``
rows marked ``imported_from_log``. Best effort, and lossy for the old prose only: a
reason that itself contained " [" and ended with "]" was always ambiguous with the
command line's note, and is cut where the old reader cut it. Later changes are
recorded as fields and never parsed. Reversing deletes the copied rows only.
"""

import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import migrations

ON = "Turned enforcement on"
OVERRIDE = re.compile(
    r"^Turned enforcement on (?P<why>.+?); override reason: (?P<reason>.*)$", re.S
)
TOO_FEW = re.compile(r"^without enough starts to tell \((?P<users>\d+) identified users\)$")
BELOW = re.compile(r"^below the readiness threshold \((?P<share>[\d.]+|n/a)%? valid\)$")
BATCH = 500


def parse(message):
    """The fields of one old enforcement entry's ``change_message``."""
    detail = ""
    if message.endswith("]") and " [" in message:  # audit() appended the actor's detail
        message, _sep, detail = message[:-1].rpartition(" [")
    enabled = message.startswith(ON)
    fields = {
        "old_value": "off" if enabled else "on",
        "new_value": "on" if enabled else "off",
        "detail": detail[:200],
        "door": "cli" if detail.startswith("command line") else "admin",
    }
    override = OVERRIDE.match(message) if enabled else None
    if override:
        fields.update(overridden=True, override_reason=override["reason"])
        too_few, below = TOO_FEW.match(override["why"]), BELOW.match(override["why"])
        if too_few:
            fields.update(readiness="not_enough_starts", readiness_count=int(too_few["users"]))
        elif below:
            share = below["share"]
            fields.update(
                readiness="not_ready",
                readiness_share=None if share == "n/a" else float(share) / 100,
            )
    elif enabled:
        fields["readiness"] = "ready"  # not overridden: the rule allowed it
    return fields


def copy_history(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    Platform = apps.get_model("trusted_identity", "Platform")
    PolicyChange = apps.get_model("trusted_identity", "PolicyChange")
    platform_type = ContentType.objects.filter(
        app_label="trusted_identity", model="platform"
    ).first()
    if platform_type is None:  # a new database: no history yet
        return
    existing = {str(pk) for pk in Platform.objects.values_list("pk", flat=True)}
    username_field = get_user_model().USERNAME_FIELD
    entries = (
        LogEntry.objects.filter(
            content_type=platform_type, change_message__startswith="Turned enforcement o"
        )
        .select_related("user")
        .order_by("pk")
    )
    rows = []
    for entry in entries.iterator(chunk_size=BATCH):
        if entry.object_id not in existing:
            continue
        rows.append(
            PolicyChange(
                platform_id=int(entry.object_id),
                setting="enforcement",
                at=entry.action_time,
                actor_id=entry.user_id,
                actor_name=str(getattr(entry.user, username_field, ""))[:150],
                imported_from_log=True,
                **parse(entry.change_message),
            )
        )
        if len(rows) >= BATCH:
            PolicyChange.objects.bulk_create(rows)
            rows = []
    PolicyChange.objects.bulk_create(rows)


def delete_copies(apps, schema_editor):
    PolicyChange = apps.get_model("trusted_identity", "PolicyChange")
    PolicyChange.objects.filter(imported_from_log=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("trusted_identity", "0008_policy_records"),
        ("admin", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(copy_history, delete_copies)]
