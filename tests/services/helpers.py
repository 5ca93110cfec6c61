"""Helpers shared by the service-layer tests."""

import base64

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Sum

from trusted_identity import services
from trusted_identity.crypto import key_id_for
from trusted_identity.models import (
    OutcomeCount,
    PlatformSecret,
)
from trusted_identity.signing import sign

USER_ID = "user-1"


def _secret(platform, actor):
    return services.reveal_secret(platform, actor)


def _start(platform, payload):
    return services.start_session(services.lookup_platform(platform.api_key), payload)


def _verifies(platform, secret, user_id=USER_ID):
    snapshot = services.lookup_platform(platform.api_key)
    return services.verify_user_id(snapshot, user_id, sign(secret, user_id))


def _counts(platform):
    rows = (
        OutcomeCount.objects.filter(platform=platform)
        .values("outcome")
        .annotate(total=Sum("count"))
        .order_by()
    )
    return {row["outcome"]: row["total"] for row in rows}


def _logs(obj):
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).order_by("pk")


def _current_rows(platform):
    return PlatformSecret.objects.filter(platform=platform).current()


def _set_keys(settings, keys):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": keys}


def _key_id(key):
    return key_id_for(base64.urlsafe_b64decode(key))
