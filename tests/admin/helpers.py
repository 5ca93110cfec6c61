"""Helpers the admin tests share: admin URLs, a platform's current secret and audit
log, the messages of a response, and outcome counts to make figures from.
"""

from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from trusted_identity.models import Platform
from trusted_identity.services import platform_secrets

from ..factories import OutcomeCountFactory

PLATFORM_LIST = "admin:trusted_identity_platform_changelist"


def settings_url(space):
    return reverse("admin:trusted_identity_space_trusted_identity", args=[space.pk])


def action_url(space, name, kind):
    return reverse(f"admin:trusted_identity_space_{name}", args=[space.pk, kind])


def current_secret(platform):
    return platform_secrets.current_secret_row(platform).get_secret()


def platform_log(platform):
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Platform), object_id=str(platform.pk)
    ).order_by("pk")


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def add_figures(platform, valid=0, invalid=0, missing=0, visitor=0, rejected=0, hours_ago=1):
    hour = (timezone.now() - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0)
    for outcome, count in (
        ("valid", valid),
        ("invalid", invalid),
        ("missing", missing),
        ("visitor", visitor),
        ("rejected", rejected),
    ):
        if count:
            OutcomeCountFactory(platform=platform, hour=hour, outcome=outcome, count=count)
