"""The signature-form section of a space's Trusted Identity page and its confirmation page:
the permission (enforce), CSRF, the readiness rule for ``token`` with its override and
reason, the audit entry, and the change reaching a warm lookup at once."""

import re

import pytest
from django.test import Client

from trusted_identity.models import Platform, Role
from trusted_identity.services import lookup, signature_forms
from trusted_identity.services.signature_forms import TokenUsage

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from .helpers import action_url, messages_of, platform_log, settings_url


def url(space, kind="ios"):
    return action_url(space, "signature_form", kind)


def test_the_page_shows_each_platforms_forms_and_a_change_form(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web")
    Platform.objects.filter(pk=web.pk).update(signature_form="either", token_max_age=3600)
    body = owner_client.get(settings_url(space)).content.decode()
    assert 'id="signature-form-text-ios" data-signature-form="plain">Plain signatures only<' in body
    assert 'data-signature-form="either">Plain signatures or tokens<' in body
    # The lifetime shows where tokens are accepted only (issue 20), not for plain-only iOS.
    assert "(a token may live at most 1h)" in body
    assert 'id="token-max-age-ios"' not in body and "(a token may live at most 24h)" not in body
    form = re.search(r'<form[^>]*action="' + re.escape(url(space)) + r'".*?</form>', body, re.S)
    assert form and 'name="csrfmiddlewaretoken"' in form.group()
    assert '<option value="plain" selected>' in form.group()
    assert 'name="max_age" id="max-age-ios" value="24h"' in form.group()


def test_a_viewer_sees_the_form_in_use_but_no_control(client, space, platform):
    viewer = UserFactory(username="vera")
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    body = client.get(settings_url(space)).content.decode()
    assert "Plain signatures only" in body
    assert 'id="signature-form-ios"' not in body
    for method in (client.get, client.post):
        assert (
            method(url(space), {"form": "either", "max_age": "1h", "post": "yes"}).status_code
            == 403
        )
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"


def test_either_asks_for_confirmation_then_changes_audited(
    owner_client, space, platform, owner, django_capture_on_commit_callbacks
):
    lookup.lookup_platform(platform.api_key)  # warm
    page = owner_client.post(url(space), {"form": "either", "max_age": "24h"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Nobody is locked out by this step" in body
    assert 'id="confirm-signature-form"' in body and "Override the readiness rule" not in body
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"
    assert owner_client.get(url(space), {"form": "either", "max_age": "24h"}).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url(space), {"form": "either", "max_age": "2h", "post": "yes"})
    assert response.status_code == 302
    assert response["Location"].endswith("#platform-ios")
    platform.refresh_from_db()
    assert (platform.signature_form, platform.token_max_age) == ("either", 7200)
    entry = platform_log(platform).last()
    assert entry.user == owner
    assert entry.change_message.startswith(
        "Signature form: plain -> either. Maximum token age: 1 day -> 2 hours."
    )
    snap = lookup.lookup_platform(platform.api_key)
    assert (snap.signature_form, snap.token_max_age) == ("either", 7200)
    followed = owner_client.get(response["Location"])
    assert "Plain signatures or tokens" in followed.content.decode()


def test_token_needs_the_override_box_and_a_reason(owner_client, space, platform, owner):
    page = owner_client.post(url(space), {"form": "token", "max_age": "1h"})
    body = page.content.decode()
    assert "Override the readiness rule" in body
    assert "Not enough starts to tell: 0 valid identified users" in body
    assert "Plain signatures stop verifying" in body
    assert "replaying it before then still works" in body

    refused = owner_client.post(url(space), {"form": "token", "max_age": "1h", "post": "yes"})
    assert refused.status_code == 200
    assert "Tick the override box" in refused.content.decode()
    no_reason = owner_client.post(
        url(space), {"form": "token", "max_age": "1h", "post": "yes", "override": "on"}
    )
    assert "Give the reason for the override." in no_reason.content.decode()
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"

    done = owner_client.post(
        url(space),
        {"form": "token", "max_age": "1h", "post": "yes", "override": "on", "reason": "v3 only"},
    )
    assert done.status_code == 302
    platform.refresh_from_db()
    assert (platform.signature_form, platform.token_max_age) == ("token", 3600)
    assert "override reason: v3 only" in platform_log(platform).last().change_message


def test_token_when_the_counts_say_ready_needs_no_override(
    owner_client, space, platform, monkeypatch
):
    usage = lambda p: TokenUsage(500, 499)  # noqa: E731
    monkeypatch.setattr(signature_forms, "token_usage", usage)
    page = owner_client.post(url(space), {"form": "token", "max_age": "24h"})
    assert "Override the readiness rule" not in page.content.decode()
    done = owner_client.post(url(space), {"form": "token", "max_age": "24h", "post": "yes"})
    assert done.status_code == 302
    assert Platform.objects.get(pk=platform.pk).signature_form == "token"


def test_token_when_the_counts_say_not_ready_shows_them(owner_client, space, platform, monkeypatch):
    usage = lambda p: TokenUsage(400, 300)  # noqa: E731
    monkeypatch.setattr(signature_forms, "token_usage", usage)
    body = owner_client.post(url(space), {"form": "token", "max_age": "24h"}).content.decode()
    assert "Only 300 of 400 valid identified users (75.0%) used an HS256 token" in body


@pytest.mark.parametrize("max_age", ["", "5", "30s", "8d", "forever", "1" * 20])
def test_a_bad_maximum_age_is_a_form_error(owner_client, space, platform, max_age):
    response = owner_client.post(url(space), {"form": "either", "max_age": max_age, "post": "yes"})
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"


def test_unknown_form_or_nothing_changed_goes_back_with_a_message(owner_client, space, platform):
    for data in ({"form": "hmac", "max_age": "1h"}, {}):
        response = owner_client.post(url(space), data, follow=True)
        assert "Choose which signatures the platform accepts." in messages_of(response)
    response = owner_client.post(url(space), {"form": "plain", "max_age": "24h"}, follow=True)
    assert any("Nothing changed" in m for m in messages_of(response))
    assert platform_log(platform).count() == 0


def test_other_tenants_and_unknown_kinds_are_404(client, space, platform):
    outsider = UserFactory(username="oscar")
    other = PlatformFactory(space=SpaceFactory(slug="globex"), kind="ios")
    MembershipFactory(space=other.space, user=outsider, role=Role.OWNER)
    client.force_login(outsider)
    data = {"form": "either", "max_age": "1h", "post": "yes"}
    assert client.post(url(space), data).status_code == 404
    assert client.post(url(other.space, "IOS"), data).status_code == 404
    assert client.post(url(other.space, "web"), data).status_code == 404
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"


def test_csrf_is_needed(space, platform, owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    response = csrf_client.post(url(space), {"form": "either", "max_age": "1h", "post": "yes"})
    assert response.status_code == 403
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"
    assert platform_log(platform).count() == 0
