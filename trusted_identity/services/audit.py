"""The audit trail: a ``LogEntry`` in the object's admin history and a log line.

Every reveal, rotation, enforcement change and membership change writes one,
through :func:`audit` or :func:`audit_many`. Messages never carry a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

from .access import Actor

audit_logger = logging.getLogger("trusted_identity.audit")


def audit(actor: Actor | None, obj: Any, message: str, flag: int = CHANGE) -> None:
    """One LogEntry (shown in the object's admin history) and one audit log line.

    The message says what happened; it never carries a secret.
    """
    audit_many(actor, [obj], message, flag)


def audit_many(
    actor: Actor | None, objects: Sequence[Any], message: str, flag: int = CHANGE
) -> None:
    """The same audit entry for each object, written with one INSERT."""
    if actor is None or not objects:
        return
    text = f"{message} [{actor.detail}]" if actor.detail else message
    LogEntry.objects.log_actions(
        user_id=actor.user.pk,
        queryset=list(objects),
        action_flag=flag,
        change_message=text,
        single_object=len(objects) == 1,
    )
    verb = {ADDITION: "addition", CHANGE: "change", DELETION: "deletion"}[flag]
    for obj in objects:
        audit_logger.info(
            "%s by %s on %s %s: %s", verb, actor.user.get_username(), obj._meta.label, obj.pk, text
        )
