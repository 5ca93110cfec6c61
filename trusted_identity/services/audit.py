"""The audit trail: an :class:`~trusted_identity.models.AuditEvent` row and a log line
for every audited action, a ``LogEntry`` in the object's admin history when the actor
is a user, and the structured :class:`~trusted_identity.models.PolicyChange` records
of a platform's gated settings with their reader.

Every reveal, rotation, enforcement change and membership change writes one,
through :func:`audit` or :func:`audit_many`, whoever did it: the command line's own
actor has no user (so no ``LogEntry``), and is found in ``AuditEvent``. Messages never
carry a secret. Call these inside the change's transaction, so the trail and the
change are written together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from ..models import AuditEvent, Door, Platform, PolicyChange, Space
from .access import Actor

audit_logger = logging.getLogger("trusted_identity.audit")

VERBS = {ADDITION: "addition", CHANGE: "change", DELETION: "deletion"}


def audit(actor: Actor | None, obj: Any, message: str, flag: int = CHANGE, *, action: str) -> None:
    """One audit event (and, for a user, one LogEntry in the object's admin history) and
    one audit log line. ``action`` names what was done (``reveal``, ``rotate``,
    ``end_grace``, ``enforcement``...), a fact to filter on, never parsed from prose.

    The message says what happened; it never carries a secret.
    """
    audit_many(actor, [obj], message, flag, action=action)


def door_of(actor: Actor) -> str:
    """The actor's door as ``models.Door`` knows it (an unknown channel is ``code``)."""
    return actor.channel if actor.channel in Door.values else Door.CODE


def _where(obj: Any) -> tuple[int | None, int | None]:
    """The space and platform an audited object belongs to, as far as it tells."""
    if isinstance(obj, Platform):
        return obj.space_id, obj.pk
    if isinstance(obj, Space):
        return obj.pk, None
    return getattr(obj, "space_id", None), getattr(obj, "platform_id", None)


def audit_many(
    actor: Actor | None,
    objects: Sequence[Any],
    message: str,
    flag: int = CHANGE,
    *,
    action: str,
) -> None:
    """The same audit entry for each object, written with one INSERT per table."""
    if actor is None or not objects:
        return
    text = f"{message} [{actor.detail}]" if actor.detail else message
    name = actor.display_name
    events = []
    for obj in objects:
        space_id, platform_id = _where(obj)
        events.append(
            AuditEvent(
                action=action,
                actor=actor.user,
                actor_name=name,
                door=door_of(actor),
                detail=actor.detail,
                space_id=space_id,
                platform_id=platform_id,
                object_label=obj._meta.label,
                object_id=str(obj.pk),
                object_repr=str(obj)[:200],
                message=message,
            )
        )
    AuditEvent.objects.bulk_create(events)
    if actor.user is not None:  # the admin's history needs a user
        LogEntry.objects.log_actions(
            user_id=actor.user.pk,
            queryset=list(objects),
            action_flag=flag,
            change_message=text,
            single_object=len(objects) == 1,
        )
    for obj in objects:
        audit_logger.info("%s by %s on %s %s: %s", VERBS[flag], name, obj._meta.label, obj.pk, text)


def record_policy_change(
    actor: Actor,
    platform: Platform,
    setting: str,
    old_value: str,
    new_value: str,
    *,
    at: datetime | None = None,
    override_reason: str = "",
    readiness: str = "",
    readiness_count: int | None = None,
    readiness_share: float | None = None,
) -> PolicyChange:
    """The structured record of one setting's change (``models.PolicySetting``), with the
    readiness rule's verdict and figures when a rule gated it; ``override_reason``
    (kept verbatim) means the rule was overridden. Its audit event is the caller's."""
    return PolicyChange.objects.create(
        at=at or timezone.now(),
        platform=platform,
        setting=setting,
        old_value=old_value,
        new_value=new_value,
        actor=actor.user,
        actor_name=actor.display_name,
        door=door_of(actor),
        detail=actor.detail,
        overridden=bool(override_reason),
        override_reason=override_reason,
        readiness=readiness,
        readiness_count=readiness_count,
        readiness_share=readiness_share,
    )


def last_policy_changes(
    platform_ids: Sequence[int], settings: Sequence[str]
) -> dict[int, PolicyChange]:
    """Per platform (when it ever changed), its latest change of any of ``settings``.

    One query: each platform's newest row through the ``(platform, setting, at)`` index.
    """
    if not platform_ids:
        return {}
    newest = PolicyChange.objects.filter(
        platform=OuterRef("platform"), setting__in=list(settings)
    ).order_by("-at", "-id")
    rows = PolicyChange.objects.filter(
        platform_id__in=list(platform_ids),
        setting__in=list(settings),
        pk=Subquery(newest.values("pk")[:1]),
    ).select_related("actor")
    return {row.platform_id: row for row in rows}
