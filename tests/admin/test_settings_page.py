"""The Trusted Identity page of a space (``trusted_identity.admin.settings_page``) without
a browser: the page, odd input, reveal, CSRF, rotation and enforcement, with their
audit entries. Who may do what is in ``test_permissions.py``.
"""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from trusted_identity.models import Platform, PlatformSecret
from trusted_identity.services import access, platform_secrets, retention

from ..factories import PlatformFactory
from .helpers import (
    PLATFORM_LIST,
    action_url,
    add_figures,
    current_secret,
    messages_of,
    platform_log,
    settings_url,
)

# ------------------------------------------------------------------ the page


def test_settings_page_shows_each_platform_with_figures_and_chart(owner_client, space, platform):
    PlatformFactory(space=space, kind="web")
    add_figures(platform, valid=95, invalid=2, missing=3, visitor=40, rejected=0)
    add_figures(platform, valid=10, hours_ago=24 * 3)
    add_figures(platform, valid=500, hours_ago=24 * 9)  # outside the window and the chart
    response = owner_client.get(settings_url(space))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert body.index('data-platform="web"') < body.index('data-platform="ios"')
    ios = body[body.index('data-platform="ios"') :]
    assert '<td data-figure="valid">105</td>' in ios
    assert '<td data-figure="invalid">2</td>' in ios
    assert '<td data-figure="missing">3</td>' in ios
    assert '<td data-figure="visitor">40</td>' in ios
    assert '<td data-figure="start_share">95.5%</td>' in ios  # of identified starts
    assert 'data-ready="false"' in ios
    assert ios.count('class="ti-chart-day"') == 7
    assert '<svg class="ti-chart-svg" role="img"' in ios
    assert platform.api_key in ios
    assert 'id="secret-ios"' in ios and "ti-masked" in ios
    assert "trusted_identity/admin.js" in body and "trusted_identity/admin.css" in body
    assert not re.search(r"<script[^>]+src=\"https?://", body)  # no CDN


def test_settings_page_shows_rotation_and_grace_end(owner_client, space, platform):
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=5))
    response = owner_client.get(settings_url(space))
    section = response.context["platforms"][0]["platform"]
    assert section.ti_last_rotated_at == platform_secrets.current_secret_row(platform).created_at
    assert section.ti_previous_valid_until == platform_secrets.previous_secret_valid_until(platform)
    body = response.content.decode()
    assert 'id="previous-valid-until-ios"><time' in body


def test_settings_page_of_an_empty_space(owner_client, space):
    response = owner_client.get(settings_url(space))
    assert response.status_code == 200
    assert "no platforms yet" in response.content.decode()


def test_settings_page_refuses_post(owner_client, space, platform):
    assert owner_client.post(settings_url(space)).status_code == 405


def test_settings_page_of_a_missing_space_is_404(owner_client, db):
    url = reverse("admin:trusted_identity_space_trusted_identity", args=[99999])
    assert owner_client.get(url).status_code == 404
    bad = reverse("admin:trusted_identity_space_trusted_identity", args=["not-a-number"])
    assert owner_client.get(bad).status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("platform/?space=" + "9" * 30, 200),
        ("platform/?space=abc", 200),
        ("platform/?space=-1", 200),
        ("space/?enforcement=nonsense", 200),
        ("space/" + "9" * 30 + "/trusted-identity/", 404),
        ("space/-1/trusted-identity/", 404),
        ("space/%00/trusted-identity/", 404),
        ("space/{pk}/trusted-identity/ios%00/rotate/", 404),
        ("space/{pk}/trusted-identity/IOS/reveal/", 404),
    ],
)
def test_odd_input_is_never_a_server_error(client, superuser, space, platform, path, status):
    client.force_login(superuser)
    response = client.get("/admin/trusted_identity/" + path.format(pk=space.pk))
    assert response.status_code == status


# -------------------------------------------------------------------- reveal


def test_reveal_shows_the_secret_once_audited_and_not_cached(owner_client, space, platform, owner):
    web = PlatformFactory(space=space, kind="web")
    response = owner_client.post(action_url(space, "reveal_secret", "ios"))
    body = response.content.decode()
    secret = current_secret(platform)
    assert response.status_code == 200
    assert secret in body
    assert current_secret(web) not in body  # only the platform asked for
    assert "no-store" in response["Cache-Control"]
    assert 'id="copy-ios"' in body and ">Copy<" in body
    assert 'data-ti-copy="secret-ios"' in body
    assert "data-ti-revealed" in body  # admin.js points a reload at the page itself
    assert any("You revealed the current iOS secret" in m for m in messages_of(response))
    entries = platform_log(platform)
    assert [e.get_change_message() for e in entries][-1] == "Revealed the current secret."
    assert entries.last().user == owner
    # Reloading (a GET of the page) hides it again.
    again = owner_client.get(settings_url(space))
    assert secret not in again.content.decode()
    assert ">Copy<" not in again.content.decode()
    assert ">Reveal<" in again.content.decode()


def test_reveal_by_get_redirects_without_revealing(owner_client, space, platform):
    before = platform_log(platform).count()
    response = owner_client.get(action_url(space, "reveal_secret", "ios"))
    assert response.status_code == 302
    assert response["Location"].endswith(f"{settings_url(space)}#platform-ios")
    assert platform_log(platform).count() == before


def test_revealed_secret_shows_in_history_and_history_has_no_secret(owner_client, space, platform):
    owner_client.post(action_url(space, "reveal_secret", "ios"))
    history = owner_client.get(
        reverse("admin:trusted_identity_platform_history", args=[platform.pk])
    )
    body = history.content.decode()
    assert "Revealed the current secret." in body
    assert current_secret(platform) not in body


def test_reveal_that_cannot_decrypt_reports_an_error(owner_client, space, platform):
    PlatformSecret.objects.filter(platform=platform).update(ciphertext="v1:xxxxxxxx:AAAA")
    response = owner_client.post(action_url(space, "reveal_secret", "ios"), follow=True)
    assert response.status_code == 200
    assert any("can't be decrypted" in m for m in messages_of(response))


# ---------------------------------------------------------------------- CSRF


def test_csrf_is_enforced_on_every_post(space, platform, owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    before = LogEntry.objects.count()
    for name, data in (
        ("reveal_secret", {}),
        ("rotate_secret", {"post": "yes", "grace": "0"}),
        ("enforcement", {"post": "yes", "enabled": "on"}),
    ):
        response = csrf_client.post(action_url(space, name, "ios"), data)
        assert response.status_code == 403, name
    response = csrf_client.post(
        reverse(PLATFORM_LIST),
        {"action": "rotate_secrets", "_selected_action": [platform.pk], "post": "yes"},
    )
    assert response.status_code == 403
    assert LogEntry.objects.count() == before
    assert not Platform.objects.get(pk=platform.pk).enforced


def test_every_post_form_carries_a_csrf_token(owner_client, space, platform):
    pages = [
        owner_client.get(settings_url(space)),
        owner_client.post(action_url(space, "reveal_secret", "ios")),
        owner_client.post(action_url(space, "rotate_secret", "ios"), {"grace": "24h"}),
        owner_client.post(action_url(space, "enforcement", "ios"), {"enabled": "on"}),
        owner_client.post(
            reverse(PLATFORM_LIST),
            {"action": "rotate_secrets", "_selected_action": [platform.pk], "index": "0"},
        ),
    ]
    for response in pages:
        body = response.content.decode()
        forms = re.findall(r"<form[^>]*method=\"post\".*?</form>", body, flags=re.S)
        assert forms
        for form in forms:
            assert 'name="csrfmiddlewaretoken"' in form


def test_reveal_with_a_csrf_token_works(space, platform, owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    page = csrf_client.get(settings_url(space))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    response = csrf_client.post(
        action_url(space, "reveal_secret", "ios"), {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 200
    assert current_secret(platform) in response.content.decode()


# ------------------------------------------------------------------ rotation


def test_rotation_asks_for_confirmation_first(owner_client, space, platform):
    old = current_secret(platform)
    response = owner_client.post(action_url(space, "rotate_secret", "ios"), {"grace": "7d"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Yes, rotate" in body and 'name="post" value="yes"' in body
    assert '<option value="7d" selected>' in body
    assert current_secret(platform) == old
    # GET shows the same page with the default grace.
    page = owner_client.get(action_url(space, "rotate_secret", "ios"))
    assert '<option value="24h" selected>' in page.content.decode()


@pytest.mark.parametrize(
    ("grace", "delta"),
    [
        ("0", None),
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
    ],
)
def test_rotation_with_each_grace_choice(owner_client, space, platform, owner, grace, delta):
    old = current_secret(platform)
    response = owner_client.post(
        action_url(space, "rotate_secret", "ios"), {"grace": grace, "post": "yes"}, follow=True
    )
    new = current_secret(platform)
    assert new != old
    body = response.content.decode()
    assert new not in body and old not in body  # the new secret is revealed explicitly only
    assert response.redirect_chain[-1][0].endswith(f"{settings_url(space)}#platform-ios")
    assert any(m.startswith("Rotated the secret of acme/ios.") for m in messages_of(response))
    until = platform_secrets.previous_secret_valid_until(platform)
    if delta is None:
        assert until is None
    else:
        assert abs(until - (timezone.now() + delta)) < timedelta(minutes=1)
    entry = platform_log(platform).last()
    assert entry.user == owner
    assert entry.get_change_message().startswith("Rotated the secret; previous secret grace:")


def test_rotation_refuses_an_unknown_grace(owner_client, space, platform):
    old = current_secret(platform)
    response = owner_client.post(
        action_url(space, "rotate_secret", "ios"), {"grace": "90d", "post": "yes"}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["grace"]
    assert current_secret(platform) == old


# --------------------------------------------------------------- enforcement


def test_turning_on_when_ready_confirms_then_enforces(owner_client, space, platform, owner):
    add_figures(platform, valid=1000, missing=5)
    page = owner_client.post(action_url(space, "enforcement", "ios"), {"enabled": "on"})
    body = page.content.decode()
    assert page.status_code == 200
    assert "Yes, turn on enforcement" in body
    assert "Counted: 1,005 identified starts (1,000 valid, 0 invalid, 5 without a signature" in body
    assert 'name="override"' not in body  # ready: no override needed
    assert not Platform.objects.get(pk=platform.pk).enforced

    done = owner_client.post(
        action_url(space, "enforcement", "ios"), {"enabled": "on", "post": "yes"}, follow=True
    )
    assert Platform.objects.get(pk=platform.pk).enforced
    assert any("Enforcement is now on for iOS" in m for m in messages_of(done))
    entry = platform_log(platform).last()
    assert (entry.get_change_message(), entry.user) == ("Turned enforcement on.", owner)
    assert ">Turn off enforcement<" in done.content.decode()


def test_confirmation_page_by_get(owner_client, space, platform):
    response = owner_client.get(action_url(space, "enforcement", "ios"), {"enabled": "on"})
    assert response.status_code == 200
    assert "Turn on enforcement for iOS?" in response.content.decode()


def test_below_threshold_needs_the_override_box_and_a_reason(owner_client, space, platform, owner):
    add_figures(platform, valid=90, missing=10)
    url = action_url(space, "enforcement", "ios")
    page = owner_client.post(url, {"enabled": "on"})
    body = page.content.decode()
    assert 'type="checkbox" name="override" id="id_override"' in body
    assert '<label class="vCheckboxLabel" for="id_override">' in body  # Django's fieldset
    assert '<label for="id_reason">' in body
    assert "Signing is not rolled out far enough: only 90.0% of the" in body

    no_box = owner_client.post(url, {"enabled": "on", "post": "yes", "reason": "because"})
    assert no_box.status_code == 200
    assert no_box.context["form"].errors["override"]
    no_reason = owner_client.post(url, {"enabled": "on", "post": "yes", "override": "on"})
    assert no_reason.status_code == 200
    assert no_reason.context["form"].errors["reason"]
    assert not Platform.objects.get(pk=platform.pk).enforced
    assert not platform_log(platform).filter(change_message__startswith="Turned").exists()

    done = owner_client.post(
        url, {"enabled": "on", "post": "yes", "override": "on", "reason": "  launch day  "}
    )
    assert done.status_code == 302
    assert Platform.objects.get(pk=platform.pk).enforced
    entry = platform_log(platform).last()
    assert entry.user == owner
    message = entry.get_change_message()
    assert "below the readiness threshold (90.0% valid)" in message
    assert message.endswith("override reason: launch day")
    history = owner_client.get(
        reverse("admin:trusted_identity_platform_history", args=[platform.pk])
    )
    assert "override reason: launch day" in history.content.decode()


def test_figures_that_drop_between_pages_ask_for_the_override(owner_client, space, platform):
    url = action_url(space, "enforcement", "ios")
    add_figures(platform, valid=100)
    page = owner_client.post(url, {"enabled": "on"})
    assert 'name="override"' not in page.content.decode()  # 100 valid starts: ready
    add_figures(platform, valid=1, missing=9, hours_ago=2)
    response = owner_client.post(url, {"enabled": "on", "post": "yes"})
    assert response.status_code == 200
    assert response.context["form"].errors["override"]
    assert 'name="override"' in response.content.decode()
    assert not Platform.objects.get(pk=platform.pk).enforced


def test_turning_off_asks_for_confirmation_too(owner_client, space, owner):
    platform = PlatformFactory(space=space, kind="ios", enforced=True)
    url = action_url(space, "enforcement", "ios")
    page = owner_client.post(url, {"enabled": "off"})
    assert page.status_code == 200
    assert "Yes, turn off enforcement" in page.content.decode()
    assert Platform.objects.get(pk=platform.pk).enforced
    owner_client.post(url, {"enabled": "off", "post": "yes"})
    assert not Platform.objects.get(pk=platform.pk).enforced
    assert platform_log(platform).last().get_change_message() == "Turned enforcement off."


def test_enforcement_already_in_that_state_or_unknown_value(owner_client, space, platform):
    url = action_url(space, "enforcement", "ios")
    same = owner_client.post(url, {"enabled": "off", "post": "yes"}, follow=True)
    assert any("already off" in m for m in messages_of(same))
    bad = owner_client.post(url, {"enabled": "maybe"}, follow=True)
    assert any("Choose whether" in m for m in messages_of(bad))
    assert not platform_log(platform).filter(change_message__startswith="Turned").exists()


def test_the_page_says_when_prune_is_overdue(owner_client, space, platform):
    page = owner_client.get(settings_url(space)).content.decode()
    assert 'id="prune-overdue"' not in page
    add_figures(platform, valid=3, hours_ago=24 * 30)  # past the hourly retention
    page = owner_client.get(settings_url(space)).content.decode()
    assert 'id="prune-overdue"' in page and "has never run" in page
    retention.prune()
    page = owner_client.get(settings_url(space)).content.decode()
    assert 'id="prune-overdue"' not in page
