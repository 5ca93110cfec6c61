"""The page and the "End the grace now" page say what a previous secret verified since
the rotation, not the starts it verified while it was the current secret."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from trusted_identity import signing
from trusted_identity.models import PlatformSecret
from trusted_identity.services import access, counting, platform_secrets

from ..test_http import start
from .helpers import action_url, current_secret, settings_url
from .test_confirmation_evidence import text

pytestmark = pytest.mark.django_db


def secrets_fact(response, kind="ios") -> str:
    body = response.content.decode()
    begin = body.index(f'id="verifying-secrets-{kind}"')
    return body[begin : body.index("</ul>", begin)]


def test_rotate_then_no_traffic_then_a_start_with_the_old_secret(
    owner_client, client, space, platform
):
    old_secret, old_id = current_secret(platform), platform.secrets.current().get().pk
    for n in range(160):  # the day before the rotation, with the then current secret
        counting.record_start(platform.pk, "valid", f"user-{n}", form="plain", secret_id=old_id)
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=24))

    quiet = secrets_fact(owner_client.get(settings_url(space)))
    assert 'data-secret="previous" data-verified-24h="160" data-since-rotation="0"' in quiet
    assert "160 starts" not in quiet and "in the last 24 hours" not in text_of(quiet, "previous")
    assert (
        "Unused since the rotation a moment ago. Wait until it has been unused for 1 hour" in quiet
    )
    assert 'data-usage="too-soon"' in quiet

    response = start(
        client, platform.api_key, {"userId": "late-1", "signed": signing.sign(old_secret, "late-1")}
    )
    assert response.status_code == 201 and response.json()["signature"] == "valid"
    used = secrets_fact(owner_client.get(settings_url(space)))
    assert 'data-since-rotation="1"' in used and 'data-usage="in-use"' in used
    assert "Since the rotation it verified 1 start, " in used
    assert "Still in use since the rotation, by 1 user: ending the grace now" in used

    start(
        client, platform.api_key, {"userId": "late-2", "signed": signing.sign(old_secret, "late-2")}
    )
    start(
        client, platform.api_key, {"userId": "late-2", "signed": signing.sign(old_secret, "late-2")}
    )
    again = text_of(secrets_fact(owner_client.get(settings_url(space))), "previous")
    assert "Since the rotation it verified 3 starts of 2 users, the last " in again
    assert "by 2 users" in again


def text_of(fact: str, which: str) -> str:
    match = re.search(rf'<li data-secret="{which}".*?</li>', fact, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match[0])) if match else ""


def test_the_current_secret_says_when_it_was_last_used(owner_client, space, platform):
    fact = text_of(secrets_fact(owner_client.get(settings_url(space))), "current")
    assert (
        "It has not verified a start yet." in fact and " - " not in fact and "0 starts" not in fact
    )
    secret = platform.secrets.current().get()
    PlatformSecret.objects.filter(pk=secret.pk).update(
        last_verified_at=timezone.now() - timedelta(days=2)
    )
    fact = text_of(secrets_fact(owner_client.get(settings_url(space))), "current")
    assert "Not used since " in fact and "0 starts" not in fact


def test_safe_to_end_says_since_when(owner_client, space, platform):
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=24))
    PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False).update(
        retired_at=timezone.now() - timedelta(hours=3, minutes=5)
    )
    fact = secrets_fact(owner_client.get(settings_url(space)))
    assert "Unused since the rotation 3\xa0hours, 5\xa0minutes ago: safe to end the grace." in fact


def test_the_end_the_grace_page_shows_the_use_since_the_rotation(owner_client, space, platform):
    old_id = platform.secrets.current().get().pk
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=24))
    url = action_url(space, "revoke_previous", "ios")
    words = text(owner_client.get(url))
    assert (
        "Not safe yet: nothing used a previous secret since the rotation, but the rotation "
        "is less than 1 hour old" in words
    )

    counting.record_start(platform.pk, "valid", "straggler", form="plain", secret_id=old_id)
    words = text(owner_client.get(url))
    assert "Since the rotation it verified 1 start, " in words
    assert (
        "Not safe yet: 1 user signed with a previous secret since the rotation, recently." in words
    )

    PlatformSecret.objects.filter(pk=old_id).update(
        retired_at=timezone.now() - timedelta(hours=5),
        last_verified_at=timezone.now() - timedelta(hours=2),
    )
    words = text(owner_client.get(url))
    assert "No previous secret has been used for at least 1 hour" in words
    assert "Unused for 2 hours: safe to end the grace." in words
