"""Alerts: the rollout_alert signal and the owners' e-mail, once each (locmem backend),
delivered off the counting path (``testing.flush()`` waits for them)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail

from trusted_identity import outcomes, runtime, signals, signing, testing
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
    from trusted_identity.services import lookup

    lookup.verification_changed()


def test_rejections_past_the_threshold_alert_the_owners_once(
    client, platform, owner, settings, received
):
    set_app_settings(settings, ALERT_REJECTIONS_PER_HOUR=5)
    enforce(platform)
    for n in range(4):
        assert start(client, platform.api_key, {"userId": f"u{n}"}).status_code == 403
    testing.flush()
    assert mail.outbox == [] and received == []
    for n in range(10):
        start(client, platform.api_key, {"userId": f"v{n}", "signed": "0" * 64})
    testing.flush()
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
    testing.flush()
    assert received == [] and mail.outbox == []


def test_a_previous_secret_used_near_the_end_of_its_grace_alerts_once(
    client, platform, owner, cli_actor, received
):
    from trusted_identity.services import platform_secrets

    old = secret_of(platform)
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(minutes=30))
    for user in ("a", "b", "c"):
        response = start(
            client, platform.api_key, {"userId": user, "signed": signing.sign(old, user)}
        )
        assert response.status_code == 201
    testing.flush()
    assert [kind for _, kind, _ in received] == ["grace_ending"]
    (message,) = mail.outbox
    assert "still in use" in message.subject and old not in message.body
    # The figures since the rotation, as the page gives them (the flush wrote them before
    # the alert was decided, on the first of the three starts).
    assert "(1 start of 1 user since the rotation)" in message.body


def test_a_previous_secret_with_a_long_grace_left_does_not_alert(
    client, platform, owner, cli_actor, received
):
    from trusted_identity.services import platform_secrets

    old = secret_of(platform)
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=24))
    start(client, platform.api_key, {"userId": "a", "signed": signing.sign(old, "a")})
    testing.flush()
    assert received == [] and mail.outbox == []


def test_alerts_are_delivered_off_the_counting_path(client, platform, owner, settings):
    """A receiver (or mail server) that hangs holds back no count: the delivery runs on
    the runtime's own thread, and the counting request returns."""
    set_app_settings(settings, ALERT_REJECTIONS_PER_HOUR=1)
    enforce(platform)
    entered, release, threads = threading.Event(), threading.Event(), []

    def slow_receiver(sender, **kwargs):
        threads.append(threading.current_thread())
        entered.set()
        release.wait(5)

    signals.rollout_alert.connect(slow_receiver)
    try:
        assert start(client, platform.api_key, {"userId": "u"}).status_code == 403
        assert entered.wait(5)  # the delivery runs, and waits...
        assert start(client, platform.api_key, {"userId": "v"}).status_code == 403  # ...not us
        assert testing.counts(platform)["rejected"] == 2
        assert mail.outbox == []
        release.set()
        testing.flush()
    finally:
        signals.rollout_alert.disconnect(slow_receiver)
    assert threads and threads[0] is not threading.current_thread()
    assert len(mail.outbox) == 1


def test_a_failing_delivery_fails_no_count(client, platform, owner, settings, monkeypatch):
    set_app_settings(settings, ALERT_REJECTIONS_PER_HOUR=1)
    enforce(platform)

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("no mail server")

    monkeypatch.setattr("trusted_identity.services.alerts.send_mail", broken)
    assert start(client, platform.api_key, {"userId": "u"}).status_code == 403
    testing.flush()
    assert testing.counts(platform)["rejected"] == 1
    assert AlertSent.objects.filter(platform=platform).count() == 1


def test_without_threads_alerts_go_out_after_the_counts_are_written(
    client, platform, owner, settings, monkeypatch
):
    """uWSGI without enable-threads: no thread of ours runs; the request delivers, after
    the write (the outbox, not the writer)."""
    set_app_settings(settings, ALERT_REJECTIONS_PER_HOUR=1)
    monkeypatch.setattr(runtime.current(), "threads", False)
    enforce(platform)
    order = []
    real = outcomes.write_batch
    monkeypatch.setattr(
        runtime.current().flusher, "write", lambda b: order.append("write") or real(b)
    )
    monkeypatch.setattr(outcomes, "in_transaction", lambda: False)
    assert start(client, platform.api_key, {"userId": "u"}).status_code == 403
    assert len(mail.outbox) == 1  # no flush(): delivered by the request itself
