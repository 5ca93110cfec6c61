"""Alerts: the rollout_alert signal and the owners' e-mail, once each (locmem backend)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from trusted_identity import signals, signing
from trusted_identity.models import AlertSent, Platform, Role

from ..factories import MembershipFactory, UserFactory
from ..test_http import secret_of, set_app_settings, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(space):
    user = UserFactory(email="owner@example.com")
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    MembershipFactory(space=space, user=UserFactory(email="viewer@example.com"), role=Role.VIEWER)
    return user


@pytest.fixture
def received():
    got = []

    def receiver(sender, platform, kind, subject, message, **kwargs):
        got.append((platform.pk, kind, subject))

    signals.rollout_alert.connect(receiver)
    yield got
    signals.rollout_alert.disconnect(receiver)


def enforce(platform):
    Platform.objects.filter(pk=platform.pk).update(enforced=True)
    from trusted_identity import services

    services.verification_changed()


def test_rejections_past_the_threshold_alert_the_owners_once(
    client, platform, owner, settings, received
):
    set_app_settings(settings, ALERT_REJECTIONS_PER_HOUR=5)
    enforce(platform)
    for n in range(4):
        assert start(client, platform.api_key, {"userId": f"u{n}"}).status_code == 403
    assert mail.outbox == [] and received == []
    for n in range(10):
        start(client, platform.api_key, {"userId": f"v{n}", "signed": "0" * 64})
    assert len(received) == 1 and received[0][1] == "rejections"
    (message,) = mail.outbox
    assert message.to == ["owner@example.com"]  # owners only, not viewers
    assert "5 rejected session starts" in message.subject
    assert secret_of(platform) not in message.body
    assert AlertSent.objects.filter(platform=platform, kind="rejections").count() == 1


def test_no_rejection_alert_when_turned_off(client, platform, owner, settings, received):
    set_app_settings(settings, ALERT_REJECTIONS_PER_HOUR=None)
    enforce(platform)
    for n in range(20):
        start(client, platform.api_key, {"userId": f"u{n}"})
    assert received == [] and mail.outbox == []


def test_a_previous_secret_used_near_the_end_of_its_grace_alerts_once(
    client, platform, owner, cli_actor, received
):
    from trusted_identity import services

    old = secret_of(platform)
    services.rotate_secret(platform, cli_actor, timedelta(minutes=30))
    for user in ("a", "b", "c"):
        response = start(
            client, platform.api_key, {"userId": user, "signed": signing.sign(old, user)}
        )
        assert response.status_code == 201
    assert [kind for _, kind, _ in received] == ["grace_ending"]
    (message,) = mail.outbox
    assert "still in use" in message.subject and old not in message.body


def test_a_previous_secret_with_a_long_grace_left_does_not_alert(
    client, platform, owner, cli_actor, received
):
    from trusted_identity import services

    old = secret_of(platform)
    services.rotate_secret(platform, cli_actor, timedelta(hours=24))
    start(client, platform.api_key, {"userId": "a", "signed": signing.sign(old, "a")})
    assert received == [] and mail.outbox == []
