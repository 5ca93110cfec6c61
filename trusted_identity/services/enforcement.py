"""Turning enforcement on and off, under the readiness rule with its explicit override;
who last changed it, when and why (read back from its ``PolicyChange`` record)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import signals
from ..conf import app_settings
from ..exceptions import MissingOverrideReason, TrustedIdentityError
from ..formatting import percent
from ..models import Door, Platform, PolicyChange, PolicySetting
from .access import Actor, authorize
from .audit import audit, last_policy_changes, record_policy_change
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
    recorded verbatim, with the figures the rule saw, in a ``PolicyChange``.
    """
    authorize(actor, "enforce", platform.space_id)
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = Platform.objects.select_for_update().select_related("space").get(pk=platform.pk)
        if locked.enforced == enabled:
            return locked
        message = "Turned enforcement on." if enabled else "Turned enforcement off."
        figures, override = None, ""
        if enabled:
            figures = readiness(locked)
            if not figures.is_ready():
                if not force:
                    raise NotReady(_not_ready_message(figures), figures)
                if not reason:
                    raise MissingOverrideReason("overriding the readiness rule needs a reason")
                overridden = _overridden(
                    figures.readiness, figures.distinct_identified, figures.valid_share
                )
                message = f"Turned enforcement on {overridden}; override reason: {reason}"
                override = reason
        locked.enforced = enabled
        locked.enforcement_changed_at = timezone.now()
        locked.save(update_fields=["enforced", "enforcement_changed_at"])
        _record(actor, locked, figures, override)
        audit(actor, locked, message, action="enforcement")
        verification_changed()
    signals.enforcement_changed.send(
        sender=Platform, platform=locked, user=actor.user, enforced=enabled, reason=reason
    )
    return locked


def _percent(share: float | None) -> str:
    """As the console and the CLI print a share (``formatting.percent``: ``98.2%``)."""
    return "n/a" if share is None else percent(share)


def _overridden(verdict: str, users: int | None, share: float | None) -> str:
    """What an override overrode, in words, from the rule's verdict and figures."""
    if verdict == NOT_ENOUGH_STARTS:
        # Too little data, not "not rolled out": readiness is judged by distinct users.
        return f"with too few users to tell ({users or 0} identified users)"
    if not verdict:  # an old record whose figures could not be read back
        return "the readiness rule"
    return f"below the readiness threshold ({_percent(share)} valid)"


def _not_ready_message(figures: Figures) -> str:
    if figures.readiness == NOT_ENOUGH_STARTS:
        return (
            f"not enough starts to tell: {figures.distinct_identified} distinct identified "
            f"users ({figures.identified} identified session starts) in the readiness window, "
            f"at least {app_settings.READINESS_MIN_STARTS} users are needed to judge the "
            "rollout; override explicitly to turn enforcement on anyway"
        )
    share = figures.valid_share
    if figures.held_back_by_failing_users:
        return (
            f"signing is not rolled out: {figures.distinct_failing} of "
            f"{figures.distinct_identified} distinct identified users "
            f"({_percent(figures.failing_share)}) made starts without a valid signature in the "
            "readiness window (an old app version on one of their devices?), more than "
            f"{_percent(1 - app_settings.READINESS_THRESHOLD)}: enforcing would reject those "
            "starts; override explicitly to turn enforcement on anyway"
        )
    return (
        f"signing is not rolled out: {_percent(share)} of "
        f"{figures.distinct_identified} distinct identified users in the readiness window had "
        f"a valid signature, below the {_percent(app_settings.READINESS_THRESHOLD)} threshold; "
        "override explicitly to turn enforcement on anyway"
    )


def _record(actor: Actor, platform: Platform, figures: Figures | None, override: str) -> None:
    """The change's ``PolicyChange``: the figures are the rule's, when turning on."""
    record_policy_change(
        actor,
        platform,
        PolicySetting.ENFORCEMENT,
        _state(not platform.enforced),
        _state(platform.enforced),
        at=platform.enforcement_changed_at,
        override_reason=override,
        readiness=figures.readiness if figures else "",
        readiness_count=figures.distinct_identified if figures else None,
        readiness_share=figures.valid_share if figures else None,
    )


def _state(enabled: bool) -> str:
    return "on" if enabled else "off"


@dataclass(frozen=True)
class EnforcementChange:
    """The last enforcement change of a platform, as its ``PolicyChange`` recorded it."""

    enabled: bool
    at: datetime
    who: str  # the actor's name as it was then (a deleted user's too, or the CLI's)
    user: Any  # the user who changed it while they exist; None for the CLI's own actor
    door: str  # models.Door: admin, cli or code
    channel: str  # the door's detail: "command line, OS user ...", or ""
    override_reason: str  # the override's reason verbatim, "" when the rule allowed it
    overridden: str  # what was overridden: "below the readiness threshold (...)", or ""


def last_enforcement_changes(platform_ids: Sequence[int]) -> dict[int, EnforcementChange]:
    """Per platform (when it ever changed), the latest enforcement change: who, through
    which door, when, and the override's reason. One query."""
    changes = last_policy_changes(platform_ids, [PolicySetting.ENFORCEMENT])
    return {pk: _change_of(change) for pk, change in changes.items()}


def _change_of(change: PolicyChange) -> EnforcementChange:
    overridden = ""
    if change.overridden:
        overridden = _overridden(change.readiness, change.readiness_count, change.readiness_share)
    channel = change.detail or ("" if change.door == Door.ADMIN else change.get_door_display())
    return EnforcementChange(
        enabled=change.new_value == "on",
        at=change.at,
        who=change.actor_name,
        user=change.actor,
        door=change.door,
        channel=channel,
        override_reason=change.override_reason,
        overridden=overridden,
    )
