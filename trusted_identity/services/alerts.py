"""Alerts: rejections piling up under enforcement, and a previous secret still in use
shortly before its grace ends.

Decided when counts are written (``outcomes`` sends ``counts_written``; ``receivers``
connects :func:`check_written_counts`), so no scheduler is needed: the starts that
cause an alert are what raises it. Each alert is decided once, whatever the number of
processes (an :class:`AlertSent` row with a unique key), and delivered as the
``rollout_alert`` signal and an e-mail to the space's owners through Django's mail by
:func:`deliver`, from the runtime's outbox: never by the code that writes counts, so
a slow or failing mail server holds no count back (``trusted_identity.testing.flush``
waits for it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from datetime import timezone as dt_timezone
from functools import partial

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import runtime, signals
from ..conf import app_settings
from ..models import AlertSent, Outcome, OutcomeCount, Platform, Role, SpaceMembership
from .secret_use import use_since_retired

logger = logging.getLogger("trusted_identity")

REJECTIONS = "rejections"
GRACE_ENDING = "grace_ending"


def owner_emails(platform: Platform) -> list[str]:
    emails = (
        SpaceMembership.objects.filter(space_id=platform.space_id, role=Role.OWNER)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    return sorted({email for email in emails if email})


def raise_alert(platform: Platform, kind: str, key: str, subject: str, message: str) -> bool:
    """Decide one alert once and queue its delivery. False when it was raised already
    (by this or another process)."""
    try:
        with transaction.atomic():
            AlertSent.objects.create(platform=platform, kind=kind, key=key)
    except IntegrityError:
        return False
    recipients = owner_emails(platform)
    logger.warning("Trusted Identity alert for platform #%s: %s", platform.pk, subject)
    runtime.current().deliver(partial(deliver, platform, kind, subject, message, recipients))
    return True


def deliver(
    platform: Platform, kind: str, subject: str, message: str, recipients: list[str]
) -> None:
    """Send a raised alert: the ``rollout_alert`` signal, then the owners' e-mail. Runs
    from the runtime's outbox; a failing receiver or mail server is logged."""
    for receiver, result in signals.rollout_alert.send_robust(
        sender=Platform, platform=platform, kind=kind, subject=subject, message=message
    ):
        if isinstance(result, Exception):
            logger.error("A rollout_alert receiver failed (%r): %r", receiver, result)
    if recipients:
        prefix = getattr(settings, "EMAIL_SUBJECT_PREFIX", "")
        try:
            send_mail(f"{prefix}{subject}", message, None, recipients)
        except Exception:
            logger.exception("Trusted Identity could not e-mail the %s alert", kind)


def _platform(platform_id: int) -> Platform | None:
    return Platform.objects.select_related("space").filter(pk=platform_id).first()


def check_rejections(rejected_hours: Iterable[tuple[int, datetime]]) -> int:
    """Alert for each enforced platform whose rejected starts in an hour reached
    ``ALERT_REJECTIONS_PER_HOUR``. Returns the alerts sent."""
    threshold = app_settings.ALERT_REJECTIONS_PER_HOUR
    if threshold is None:
        return 0
    sent = 0
    for platform_id, hour in rejected_hours:
        key = (platform_id, REJECTIONS, hour.astimezone(dt_timezone.utc).isoformat())
        raised = runtime.current().alerts_raised
        if raised.seen(key):  # sent already: no query for the hour's count
            continue
        total = (
            OutcomeCount.objects.filter(
                platform_id=platform_id, hour=hour, outcome=Outcome.REJECTED
            )
            .values_list("count", flat=True)
            .first()
        )
        if (total or 0) < threshold or not raised.first_time(key):
            continue
        platform = _platform(platform_id)
        if platform is None or not platform.enforced:
            continue
        name = f"{platform.space.slug}/{platform.kind}"
        subject = f"Trusted Identity: {total:,} rejected session starts on {name} this hour"
        message = (
            f"Enforcement is on for {name}, and it has rejected {total:,} session starts in "
            f"the hour from {hour:%Y-%m-%d %H:00} UTC (the alert threshold is "
            f"{threshold:,}).\n\nReal users may be locked out: look at the reasons, the app "
            "versions and the failure log on the space's Trusted Identity page, and turn "
            "enforcement off if signing is not rolled out everywhere."
        )
        sent += raise_alert(platform, REJECTIONS, key[2], subject, message)
    return sent


def check_grace_endings(warnings: Iterable[tuple[int, int, float]]) -> int:
    """Alert once per previous secret that verified a start within
    ``ALERT_GRACE_ENDING_WITHIN`` of the end of its grace. Returns the alerts sent."""
    sent = 0
    now = timezone.now().timestamp()
    raised = runtime.current().alerts_raised
    for platform_id, secret_id, grace_end in warnings:
        key = (platform_id, GRACE_ENDING, str(secret_id))
        if grace_end <= now or not raised.first_time(key):
            continue
        platform = _platform(platform_id)
        if platform is None:
            continue
        ends = datetime.fromtimestamp(grace_end, tz=dt_timezone.utc)
        name = f"{platform.space.slug}/{platform.kind}"
        starts, users = use_since_retired(secret_id)
        subject = f"Trusted Identity: the previous secret of {name} is still in use"
        message = (
            f"A previous secret of {name} still verifies session starts ({starts:,} "
            f"{'start' if starts == 1 else 'starts'} of {users:,} "
            f"{'user' if users == 1 else 'users'} since the rotation), and its grace ends "
            f"at {ends:%Y-%m-%d %H:%M} UTC. After that, clients still signing with it will "
            "be rejected where enforcement is on (and counted as invalid elsewhere).\n\n"
            "Make sure every signing server uses the current secret, or rotate again with a "
            "longer grace."
        )
        sent += raise_alert(platform, GRACE_ENDING, key[2], subject, message)
    return sent


def check_written_counts(sender, *, rejected_hours, grace_warnings, **kwargs) -> None:
    """The ``counts_written`` receiver."""
    if rejected_hours:
        check_rejections(rejected_hours)
    if grace_warnings:
        check_grace_endings(grace_warnings)
