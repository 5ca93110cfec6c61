"""The console's wording and links (issue 20): the main admin index links each space's
Trusted Identity page, a rotation's message on the page doesn't send the reader to the
page, the token lifetime shows only where tokens are accepted, messages land in the
section acted on, and the tester's verdict reads at a glance without internal ids.
"""

import pytest
from django.urls import reverse

from trusted_identity.models import Platform, SignatureForm
from trusted_identity.services import signature_tester
from trusted_identity.signing import sign

from ..factories import SpaceFactory
from .helpers import action_url, current_secret, messages_of, settings_url

pytestmark = pytest.mark.django_db


def section_of(body, kind):
    start = body.index(f'id="platform-{kind}"')
    end = body.find("<section", start + 1)
    return body[start : end if end != -1 else len(body)]


def test_the_main_admin_index_links_each_visible_space_page(owner_client, space):
    hidden = SpaceFactory(slug="other", name="Someone Else's")
    body = owner_client.get(reverse("admin:index")).content.decode()
    pages = body[body.index('id="trusted-identity-index-pages"') :]
    assert f'href="{settings_url(space)}"' in pages
    assert settings_url(hidden) not in body
    assert 'id="recent-actions-module"' in body  # Django's index is still all there


def test_rotating_on_the_page_doesnt_send_the_reader_to_the_page(owner_client, space, platform):
    response = owner_client.post(
        action_url(space, "rotate_secret", platform.kind),
        {"grace": "24h", "post": "yes"},
        follow=True,
    )
    (message,) = messages_of(response)
    assert message.startswith("Rotated the secret of")
    assert "Trusted Identity page" not in message
    assert response.redirect_chain[-1][0].endswith(f"#platform-{platform.kind}")
    body = response.content.decode()
    # Drawn in the section the redirect lands on, as Django draws its messages.
    section = section_of(body, platform.kind)
    assert f'<ul class="messagelist ti-section-messages" id="messages-{platform.kind}">' in section
    assert f'class="ti-platform-{platform.kind} success"' in section
    assert "Rotated the secret of" not in body[: body.index(f'id="platform-{platform.kind}"')]


def test_the_token_lifetime_shows_only_where_tokens_are_accepted(owner_client, space, platform):
    body = owner_client.get(settings_url(space)).content.decode()
    assert f'id="token-max-age-{platform.kind}"' not in body  # plain only
    Platform.objects.filter(pk=platform.pk).update(signature_form=SignatureForm.TOKEN)
    body = owner_client.get(settings_url(space)).content.decode()
    assert f'id="token-max-age-{platform.kind}"' in body
    # The form's field is marked for the script that hides it while "plain" is chosen.
    assert 'data-ti-tokens-only="plain"' in body


@pytest.mark.parametrize(
    ("signed_with", "tone", "icon"),
    [("current", "ok", "icon-yes.svg"), ("garbage", "bad", "icon-no.svg")],
)
def test_the_tester_verdict_is_coloured_worded_and_without_ids(
    owner_client, space, platform, signed_with, tone, icon
):
    signature = sign(current_secret(platform), "user-1") if signed_with == "current" else "f" * 64
    response = owner_client.post(
        action_url(space, "test_signature", platform.kind),
        {"user_id": "user-1", "signature": signature},
    )
    body = response.content.decode()
    banner = body[body.index('id="verdict-banner"') - 60 :]
    banner = banner[: banner.index("</div>\n  </div>")]
    assert f"ti-verdict-{tone}" in banner and icon in banner
    assert "(#" not in body and "secret #" not in body
    if tone == "ok":
        assert "Signed with the current secret." in banner
    # The signature's field is a textarea wide enough for 64 hex digits.
    textarea = body[body.index('<textarea name="signature"') :]
    textarea = textarea[: textarea.index(">")]
    assert 'cols="66"' in textarea and "ti-signature-field" in textarea


def test_verdict_tones():
    from trusted_identity.admin.signature_tester import verdict_tone

    class Found:
        def __init__(self, verdict, accepted):
            self.verdict, self.accepted = verdict, accepted

    assert verdict_tone(Found(signature_tester.VALID_CURRENT, True)) == "ok"
    assert verdict_tone(Found(signature_tester.VALID_CURRENT, False)) == "warn"
    assert verdict_tone(Found(signature_tester.VALID_PREVIOUS, True)) == "warn"
    assert verdict_tone(Found(signature_tester.NO_MATCH, False)) == "bad"


def test_moments_read_alike_on_the_record_pages(owner_client, space, platform, owner):
    """Memberships and policy records write their moments as the rest of the app does
    (``2026-12-03 17:59 UTC``), not in the locale's ``Dec. 3, 2026, 5:59 p.m.``."""
    from trusted_identity.formatting import moment
    from trusted_identity.models import PolicyChange, SpaceMembership
    from trusted_identity.services import access, enforcement

    membership = SpaceMembership.objects.get(user=owner)
    body = owner_client.get(reverse("admin:trusted_identity_spacemembership_changelist")).content
    assert moment(membership.created_at) in body.decode()
    body = owner_client.get(
        reverse("admin:trusted_identity_spacemembership_change", args=[membership.pk])
    ).content.decode()
    assert moment(membership.created_at) in body and "p.m." not in body and "a.m." not in body
    enforcement.set_enforcement(platform, True, access.get_cli_actor(), force=True, reason="test")
    change = PolicyChange.objects.get()
    body = owner_client.get(
        reverse("admin:trusted_identity_policychange_change", args=[change.pk])
    ).content.decode()
    assert moment(change.at) in body and "p.m." not in body and "a.m." not in body
