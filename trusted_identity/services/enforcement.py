"""Turning enforcement on and off, under the readiness rule with its explicit override;
who last changed it, when and why (read back from its audit entry)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from .. import signals
from ..conf import app_settings
from ..exceptions import MissingOverrideReason, TrustedIdentityError
from ..models import Platform
from .access import Actor, authorize
from .audit import audit
from .figures import NOT_ENOUGH_STARTS, Figures, readiness
from .lookup import verification_changed


class NotReady(TrustedIdentityError):
    """Enforcement refused: signing is not rolled out far enough (readiness rule).

    Carries the :class:`Figures` that decided it, for the admin and the CLI to show.
    """

    code = "not_ready"
    status = 409

    def __init__(self, message: str, figures: Figures) -> None:
        super().__init__(message)
        self.figures = figures


def set_enforcement(
    platform: Platform,
    enabled: bool,
    actor: Actor,
    *,
    force: bool = False,
    reason: str = "",
) -> Platform:
    """Turn enforcement on or off, following the readiness rule.

    Turning on is refused with :class:`NotReady` unless the readiness window holds
    at least ``READINESS_MIN_STARTS`` distinct identified users with a valid share at
    or above the threshold, or ``force`` is given with a ``reason``, which is
    recorded in the audit.
    """
    authorize(actor, "enforce", platform.space_id)
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = Platform.objects.select_for_update().select_related("space").get(pk=platform.pk)
        if locked.enforced == enabled:
            return locked
        message = "Turned enforcement on." if enabled else "Turned enforcement off."
        if enabled:
            figures = readiness(locked)
            if not figures.is_ready():
                if not force:
                    raise NotReady(_not_ready_message(figures), figures)
                if not reason:
                    raise MissingOverrideReason("overriding the readiness rule needs a reason")
                message = f"Turned enforcement on {_overridden(figures)}; override reason: {reason}"
        locked.enforced = enabled
        locked.enforcement_changed_at = timezone.now()
        locked.save(update_fields=["enforced", "enforcement_changed_at"])
        audit(actor, locked, message)
        verification_changed()
    signals.enforcement_changed.send(
        sender=Platform, platform=locked, user=actor.user, enforced=enabled, reason=reason
    )
    return locked


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.2f}%"


def _overridden(figures: Figures) -> str:
    if figures.readiness == NOT_ENOUGH_STARTS:
        return f"without enough starts to tell ({figures.distinct_identified} identified users)"
    return f"below the readiness threshold ({_percent(figures.valid_share)} valid)"


def _not_ready_message(figures: Figures) -> str:
    if figures.readiness == NOT_ENOUGH_STARTS:
        return (
            f"not enough starts to tell: {figures.distinct_identified} distinct identified "
            f"users ({figures.identified} identified session starts) in the readiness window, "
            f"at least {app_settings.READINESS_MIN_STARTS} users are needed to judge the "
            "rollout; override explicitly to turn enforcement on anyway"
        )
    return (
        f"signing is not rolled out: {_percent(figures.valid_share)} of "
        f"{figures.distinct_identified} distinct identified users in the readiness window had "
        f"a valid signature, below the {_percent(app_settings.READINESS_THRESHOLD)} threshold; "
        "override explicitly to turn enforcement on anyway"
    )


ON_MESSAGE = "Turned enforcement on"
OFF_MESSAGE = "Turned enforcement off"
_OVERRIDE = re.compile(
    r"^Turned enforcement on (?P<why>.+?); override reason: (?P<reason>.*)$", re.S
)


@dataclass(frozen=True)
class EnforcementChange:
    """The last enforcement change of a platform, as its audit entry recorded it."""

    enabled: bool
    at: datetime
    user: Any  # the user who changed it (the CLI's own account for the command line)
    channel: str  # what the entry says after the message: "command line, OS user ...", or ""
    override_reason: str  # the override's reason, "" when the readiness rule allowed it
    overridden: str  # what was overridden: "below the readiness threshold (...)", or ""


def last_enforcement_changes(platform_ids: Sequence[int]) -> dict[int, EnforcementChange]:
    """Per platform (when it ever changed), the latest enforcement change, read from the
    audit entries ``set_enforcement`` writes: who, when, and the override's reason. One
    query."""
    if not platform_ids:
        return {}
    entries = (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Platform),
            object_id__in=[str(pk) for pk in platform_ids],
            change_message__startswith="Turned enforcement o",
        )
        .select_related("user")
        .order_by("-action_time", "-pk")
    )
    found: dict[int, EnforcementChange] = {}
    for entry in entries.iterator():
        pk = int(entry.object_id)
        if pk in found:
            continue
        found[pk] = _change_of(entry)
        if len(found) == len(platform_ids):
            break
    return found


def _change_of(entry: LogEntry) -> EnforcementChange:
    message, channel = entry.change_message, ""
    if message.endswith("]") and " [" in message:  # audit() appends the actor's detail
        message, _sep, channel = message[:-1].rpartition(" [")
    enabled = message.startswith(ON_MESSAGE)
    override = _OVERRIDE.match(message) if enabled else None
    return EnforcementChange(
        enabled=enabled,
        at=entry.action_time,
        user=entry.user,
        channel=channel,
        override_reason=override["reason"] if override else "",
        overridden=override["why"] if override else "",
    )
