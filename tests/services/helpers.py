"""Helpers shared by the service-layer tests."""

import base64

from django.db.models import Sum

from tests.support import verify_user_id
from trusted_identity.crypto import key_id_for
from trusted_identity.models import (
    AuditEvent,
    OutcomeCount,
    PlatformSecret,
)
from trusted_identity.services import lookup, platform_secrets, sessions
from trusted_identity.signing import sign

USER_ID = "user-1"


def _secret(platform, actor):
    return platform_secrets.reveal_secret(platform, actor)


def _start(platform, payload):
    return sessions.start_session(lookup.lookup_platform(platform.api_key), payload)


def _verifies(platform, secret, user_id=USER_ID):
    snapshot = lookup.lookup_platform(platform.api_key)
    return verify_user_id(snapshot, user_id, sign(secret, user_id))


def _counts(platform):
    rows = (
        OutcomeCount.objects.filter(platform=platform)
        .values("outcome")
        .annotate(total=Sum("count"))
        .order_by()
    )
    return {row["outcome"]: row["total"] for row in rows}


def _audit_events(obj):
    """The object's audit trail (written for every actor, the CLI's own included)."""
    return AuditEvent.objects.filter(object_label=obj._meta.label, object_id=str(obj.pk)).order_by(
        "pk"
    )


def _current_rows(platform):
    return PlatformSecret.objects.filter(platform=platform).current()


def _set_keys(settings, keys):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": keys}


def _key_id(key):
    return key_id_for(base64.urlsafe_b64decode(key))
