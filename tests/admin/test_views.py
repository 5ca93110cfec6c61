"""The declared shapes of the admin's Trusted Identity views (``trusted_identity.admin.
views``): the gated-change confirmation's shared behaviour, the service's refusal as a
403, and the breadcrumbs drawn through Django's own block as Django draws its own.
"""

import re
from unittest import mock

import pytest
from django.urls import reverse

from trusted_identity.admin.views import BREADCRUMBS_AS_LIST
from trusted_identity.exceptions import InvalidRequest, PermissionDenied, TrustedIdentityError
from trusted_identity.models import Platform

from .helpers import action_url, add_figures, platform_log, settings_url

BREADCRUMBS = re.compile(r'<(div|ol) class="breadcrumbs">(.*?)</\1>', re.S)

# Each gated change: its URL name, the data that asks for it below the readiness rule,
# and whether the platform changed.
GATED = [
    ("enforcement", {"enabled": "on"}, lambda p: p.enforced),
    ("signature_form", {"form": "token", "max_age": "24h"}, lambda p: p.signature_form == "token"),
]


@pytest.mark.parametrize(("name", "data", "changed"), GATED)
def test_a_gated_change_below_the_rule_shows_evidence_and_needs_a_reasoned_override(
    owner_client, space, platform, name, data, changed
):
    add_figures(platform, valid=90, missing=10)
    url = action_url(space, name, "ios")
    page = owner_client.post(url, data)
    assert page.status_code == 200 and page.context["needs_override"]
    assert 'id="override-warning"' in page.content.decode()  # the evidence, worded

    refused = owner_client.post(url, {**data, "post": "yes", "reason": "launch"})
    assert refused.context["form"].errors["override"]  # the service refused: no box ticked
    missing = owner_client.post(url, {**data, "post": "yes", "override": "on"})
    assert missing.context["form"].errors["reason"] == ["Give the reason for the override."]
    assert not changed(Platform.objects.get(pk=platform.pk))

    before = platform_log(platform).count()
    done = owner_client.post(url, {**data, "post": "yes", "override": "on", "reason": "launch"})
    assert done.status_code == 302 and done["Location"].endswith("#platform-ios")
    assert changed(Platform.objects.get(pk=platform.pk))
    assert platform_log(platform).count() == before + 1  # the audit entry
    assert "launch" in platform_log(platform).last().change_message


@pytest.mark.parametrize(("name", "data", "changed"), GATED)
def test_another_invalid_request_is_shown_as_itself_not_as_a_missing_reason(
    owner_client, space, platform, name, data, changed
):
    service = {
        "enforcement": "enforcement.set_enforcement",
        "signature_form": "signature_forms.set_signature_form",
    }[name]
    url = action_url(space, name, "ios")
    with mock.patch(
        f"trusted_identity.services.{service}", side_effect=InvalidRequest("that is odd")
    ):
        page = owner_client.post(url, {**data, "post": "yes", "override": "on", "reason": "x"})
    assert page.status_code == 200
    assert page.context["form"].non_field_errors() == ["that is odd"]
    assert "reason" not in page.context["form"].errors
    assert "that is odd" in page.content.decode()


@pytest.mark.parametrize(
    "name", ["enforcement", "signature_form", "rotate_secret", "revoke_previous", "reveal_secret"]
)
def test_the_services_permission_denied_is_a_403_without_translation(
    owner_client, space, platform, name
):
    assert issubclass(PermissionDenied, TrustedIdentityError)  # the CLI and HTTP contract
    assert PermissionDenied.code == "permission_denied" and PermissionDenied.status == 403
    refusal = PermissionDenied("not in this space")
    data = {"enabled": "on", "form": "either", "max_age": "24h", "grace": "1h", "post": "yes"}
    with (
        mock.patch("trusted_identity.services.enforcement.set_enforcement", side_effect=refusal),
        mock.patch(
            "trusted_identity.services.signature_forms.set_signature_form", side_effect=refusal
        ),
        mock.patch("trusted_identity.services.platform_secrets.rotate_secret", side_effect=refusal),
        mock.patch(
            "trusted_identity.services.platform_secrets.revoke_previous", side_effect=refusal
        ),
        mock.patch("trusted_identity.services.platform_secrets.reveal_secret", side_effect=refusal),
    ):
        response = owner_client.post(action_url(space, name, "ios"), data)
    assert response.status_code == 403


def test_the_breadcrumbs_are_drawn_in_djangos_block_as_its_own_change_list_draws_them(
    owner_client, space, platform
):
    changelist = owner_client.get(reverse("admin:trusted_identity_space_changelist"))
    (django_shape,) = BREADCRUMBS.findall(changelist.content.decode())
    assert django_shape[0] == ("ol" if BREADCRUMBS_AS_LIST else "div")
    for url in (
        settings_url(space),
        action_url(space, "rotate_secret", "ios"),
        action_url(space, "test_signature", "ios"),
        action_url(space, "revoke_previous", "ios"),
    ):
        body = owner_client.get(url).content.decode()
        (ours,) = BREADCRUMBS.findall(body)  # exactly one, inside Django's <nav>
        assert ours[0] == django_shape[0]
        assert body.index('<nav aria-label="Breadcrumbs">') < body.index('class="breadcrumbs"')
        assert f'href="{reverse("admin:index")}"' in ours[1]
        assert f'href="{reverse("admin:trusted_identity_space_changelist")}"' in ours[1]
