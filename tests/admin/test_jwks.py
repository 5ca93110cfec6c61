"""A platform's JWKS URL on its space's Trusted Identity page (``admin.jwks``, the partial
``_jwks.html``): its state shown (URL, keys with kid, algorithm and fingerprint, when
fetched, the last error), set, fetched again and removed, permission-checked,
CSRF-protected and audited. The JWKS host is a local HTTPS server (tests/jwks_server.py).
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from trusted_identity.models import AuditEvent, JwksSource, Role
from trusted_identity.publickeys import parse_public_key
from trusted_identity.services import access, jwks

from ..factories import MembershipFactory, UserFactory
from ..jwks_server import certificates, jwk_of, jwks_host, no_proxy  # noqa: F401
from ..keytoken_helpers import private_keys, public_pem_of
from .helpers import action_url, messages_of, platform_log, settings_url

KEYS = private_keys()
NEXT = ec.generate_private_key(ec.SECP256R1())


def jwks_url(space, kind="ios"):
    return action_url(space, "jwks", kind)


def section_of(body, kind="ios"):
    start = body.index(f'id="platform-{kind}"')
    end = body.find("<section", start)
    return body[start : end if end != -1 else len(body)]


def post(client, space, follow=True, **data):
    return client.post(jwks_url(space), data, follow=follow)


@pytest.fixture
def served(jwks_host):
    return jwks_host.serve_keys(jwk_of(KEYS["ES256"], "ec-1"), jwk_of(KEYS["RS256"], "rsa-1"))


def test_the_section_offers_a_url_field_until_one_is_set(owner_client, space, platform):
    section = section_of(owner_client.get(settings_url(space)).content.decode())
    assert 'id="jwks-ios"' in section and "None: public-key tokens are verified" in section
    assert f'action="{jwks_url(space)}#jwks-label-ios"' in section
    assert 'id="jwks-input-ios"' in section and "Set JWKS URL" in section
    assert 'id="jwks-refresh-ios"' not in section


def test_setting_a_url_shows_its_keys_and_audits(owner_client, owner, space, platform, served):
    response = post(owner_client, space, action="set", url=f"  {served} ")
    assert response.redirect_chain[-1][0].endswith(settings_url(space) + "#platform-ios")
    assert messages_of(response) == ["iOS now also verifies with the keys of its JWKS URL."]
    section = section_of(response.content.decode())
    assert f'<code id="jwks-url-ios">{served}</code>' in section
    for kid, private in (("ec-1", KEYS["ES256"]), ("rsa-1", KEYS["RS256"])):
        assert f'data-kid="{kid}"' in section
        assert parse_public_key(public_pem_of(private)).fingerprint in section
    assert "Last good set fetched" in section and 'id="jwks-error-ios"' not in section
    assert 'id="jwks-refresh-ios"' in section and "Change URL" in section
    entry = platform_log(platform).last()
    assert entry.user == owner and entry.get_change_message().startswith(
        f"Set the JWKS URL to {served}: 2 keys"
    )
    event = AuditEvent.objects.get(action="jwks_url")
    assert (event.door, event.actor_name) == ("admin", owner.get_username())


def test_a_url_without_a_usable_set_comes_back_with_the_reason_beside_it(
    owner_client, space, platform, jwks_host
):
    broken = jwks_host.answer("/broken", status=404)
    response = post(owner_client, space, follow=False, action="set", url=broken)
    assert response.status_code == 200
    section = section_of(response.content.decode())
    assert f'value="{broken}"' in section  # what was typed stays in the field
    assert 'class="errorlist" id="jwks-input-error-ios"' in section
    assert "the server answered HTTP 404; nothing was stored" in section
    assert not JwksSource.objects.exists() and not AuditEvent.objects.filter(action="jwks_url")
    response = post(owner_client, space, follow=False, action="set", url="http://keys.example/")
    assert "must use https://" in section_of(response.content.decode())


def test_fetching_again_says_what_it_found_and_shows_the_last_error(
    owner_client, space, platform, served, jwks_host
):
    jwks.set_jwks_url(platform, served, access.get_cli_actor())
    jwks_host.serve_keys(jwk_of(NEXT, "ec-2"))
    response = post(owner_client, space, action="refresh")
    assert messages_of(response) == ["Fetched the iOS JWKS: a new key set, in use within a second."]
    assert 'data-kid="ec-2"' in section_of(response.content.decode())
    assert AuditEvent.objects.filter(action="jwks_keys").count() == 1
    jwks_host.answer(body=b"<b>SERVER-PAGE</b>", status=503)
    response = post(owner_client, space, action="refresh")
    assert messages_of(response) == [
        "Fetching the iOS JWKS failed: the server answered HTTP 503. Its last good set is kept."
    ]
    section = section_of(response.content.decode())
    assert 'id="jwks-error-ios"' in section and "failed: the server answered HTTP 503" in section
    assert 'data-kid="ec-2"' in section and "SERVER-PAGE" not in response.content.decode()


def test_removing_asks_first_then_removes_audited(owner_client, space, platform, served):
    jwks.set_jwks_url(platform, served, access.get_cli_actor())
    page = owner_client.get(jwks_url(space) + "?action=clear")
    assert page.status_code == 200
    body = page.content.decode()
    assert "will stop verifying with" in body and served in body and "its 2 keys" in body
    assert JwksSource.objects.exists()
    unconfirmed = post(owner_client, space, follow=False, action="clear")
    assert unconfirmed.status_code == 200 and JwksSource.objects.exists()
    response = post(owner_client, space, action="clear", post="yes")
    assert messages_of(response) == ["iOS no longer verifies with a JWKS URL."]
    assert not JwksSource.objects.exists()
    assert (
        platform_log(platform)
        .last()
        .get_change_message()
        .startswith(f"Removed the JWKS URL {served}")
    )
    again = owner_client.get(jwks_url(space) + "?action=clear", follow=True)
    assert messages_of(again) == ["iOS has no JWKS URL: nothing to remove."]


@pytest.mark.parametrize("role", [Role.VIEWER, None])
def test_only_those_who_manage_keys_may(client, space, platform, served, role):
    user = UserFactory(is_staff=True)
    if role:
        MembershipFactory(space=space, user=user, role=role)
    client.force_login(user)
    for data in (
        {"action": "set", "url": served},
        {"action": "refresh"},
        {"action": "clear", "post": "yes"},
    ):
        response = client.post(jwks_url(space), data)
        assert response.status_code == (403 if role else 404)
    assert client.get(jwks_url(space) + "?action=clear").status_code == (403 if role else 404)
    assert not JwksSource.objects.exists()
    if role:  # a viewer sees the state, without the buttons
        jwks.set_jwks_url(platform, served, access.get_cli_actor())
        section = section_of(client.get(settings_url(space)).content.decode())
        assert 'data-kid="ec-1"' in section
        assert 'id="jwks-input-ios"' not in section and 'id="jwks-refresh-ios"' not in section


def test_csrf_is_checked(owner, space, platform, served):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(jwks_url(space), {"action": "set", "url": served})
    assert response.status_code == 403
    assert not JwksSource.objects.exists()


def test_a_get_changes_nothing_and_odd_input_is_a_message(owner_client, space, platform, served):
    response = owner_client.get(jwks_url(space) + f"?action=set&url={served}", follow=True)
    assert response.redirect_chain[-1][0].endswith("#platform-ios")
    assert not JwksSource.objects.exists()
    response = post(owner_client, space, action="drop-tables")
    assert messages_of(response) == ["Choose to set, fetch again or remove the JWKS URL."]
    response = post(owner_client, space, follow=False, action="set", url="https://x/" + "a" * 3000)
    assert response.status_code == 200 and "at most 2048 characters" in response.content.decode()
    assert (
        owner_client.post(action_url(space, "jwks", "roku"), {"action": "refresh"}).status_code
        == 404
    )
