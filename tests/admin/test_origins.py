"""The allowed origins (CORS) of a web platform on its space's Trusted Identity page
(``trusted_identity.admin.origins``): shown, allowed, removed, permission-checked,
CSRF-protected and audited.
"""

import pytest
from django.test import Client

from trusted_identity.models import AllowedOrigin, Role
from trusted_identity.services import access, origins

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from .helpers import action_url, messages_of, platform_log, settings_url


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


def origins_url(space, kind="web"):
    return action_url(space, "origins", kind)


def allow(client, space, origin, kind="web"):
    return client.post(origins_url(space, kind), {"action": "allow", "origin": origin}, follow=True)


def deny(client, space, origin, kind="web"):
    """Remove an origin, confirmed (the button leads to a confirmation page first)."""
    return client.post(
        origins_url(space, kind),
        {"action": "deny", "origin": origin, "post": "yes"},
        follow=True,
    )


def section_of(body, kind="web"):
    start = body.index(f'id="platform-{kind}"')
    end = body.find("<section", start)
    return body[start : end if end != -1 else len(body)]


def test_the_web_section_lists_origins_with_remove_buttons_and_an_add_form(
    owner_client, space, web, platform
):
    origins.allow_origin(web, "https://b.example", access.get_cli_actor())
    origins.allow_origin(web, "https://a.example", access.get_cli_actor())
    body = owner_client.get(settings_url(space)).content.decode()
    section = body[body.index('id="platform-web"') : body.index('id="platform-ios"')]
    assert section.index('data-origin="https://a.example"') < section.index(
        'data-origin="https://b.example"'
    )
    assert section.count('class="button ti-remove-origin"') == 2
    assert 'id="origin-web"' in section and 'id="allow-origin-web"' in section
    assert f'action="{origins_url(space)}#origins-label-web"' in section
    assert f'href="{origins_url(space)}?action=deny&amp;origin=https%3A%2F%2Fa.example"' in section
    ios = body[body.index('id="platform-ios"') :]
    assert "Allowed origins" not in ios  # other kinds have no list


def test_allow_an_origin(owner_client, owner, space, web):
    response = allow(owner_client, space, " HTTPS://App.Example.com:443 ")
    assert response.redirect_chain[-1][0].endswith(settings_url(space) + "#platform-web")
    assert origins.allowed_origins(web) == ["https://app.example.com"]
    (message,) = messages_of(response)
    assert (
        message == "Pages of https://app.example.com may now start Web sessions from the browser."
    )
    entry = platform_log(web).last()
    assert entry.user == owner
    assert entry.get_change_message() == "Allowed the origin https://app.example.com (CORS)."
    body = response.content.decode()
    assert 'data-origin="https://app.example.com"' in body
    # The message is drawn in the web section the redirect lands on, not at the top.
    assert 'id="messages-web"' in section_of(body)
    assert "may now start Web sessions" in section_of(body)
    assert "may now start Web sessions" not in body[: body.index('id="platform-web"')]
    assert origins.cors_allowed("https://app.example.com")  # the change is live


def test_allowing_again_says_nothing_changed(owner_client, space, web):
    allow(owner_client, space, "https://a.example")
    response = allow(owner_client, space, "https://a.example/")
    assert messages_of(response) == [
        "The origin https://a.example was already allowed for Web; nothing changed."
    ]
    assert "Https://" not in response.content.decode()  # capfirst never meets a URL first
    assert platform_log(web).count() == 1  # allowed once


def test_removing_asks_for_a_confirmation_first(owner_client, space, web):
    origins.allow_origin(web, "https://a.example", access.get_cli_actor())
    page = owner_client.get(origins_url(space), {"action": "deny", "origin": "https://a.example"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "will no longer start <strong>Web</strong> sessions" in body
    assert 'name="post" value="yes"' in body and 'id="confirm-remove-origin"' in body
    assert origins.allowed_origins(web) == ["https://a.example"]
    # A POST without the confirmation shows the same page and removes nothing.
    unconfirmed = owner_client.post(
        origins_url(space), {"action": "deny", "origin": "https://a.example"}
    )
    assert (
        unconfirmed.status_code == 200
        and 'id="confirm-remove-origin"' in unconfirmed.content.decode()
    )
    assert origins.allowed_origins(web) == ["https://a.example"]
    assert not platform_log(web).filter(change_message__contains="Removed").exists()


def test_remove_an_origin(owner_client, owner, space, web):
    origins.allow_origin(web, "https://a.example", access.get_cli_actor())
    response = deny(owner_client, space, "https://a.example")
    assert origins.allowed_origins(web) == []
    assert messages_of(response) == [
        "Pages of https://a.example may no longer start Web sessions from the browser."
    ]
    entry = platform_log(web).last()
    assert entry.user == owner
    assert entry.get_change_message() == "Removed the allowed origin https://a.example (CORS)."


@pytest.mark.parametrize(
    ("origin", "error"),
    [
        ("https://*.example.com", "wildcards are not allowed"),
        ("app.example.com", "no scheme"),
        ("", "This field is required."),
        ("https://a.example/path", "no path"),
    ],
)
def test_invalid_origins_are_refused_beside_the_field(owner_client, space, web, origin, error):
    response = allow(owner_client, space, origin)
    assert response.status_code == 200
    assert messages_of(response) == []
    form = section_of(response.content.decode())
    form = form[form.index('class="ti-inline-form ti-origin-form errors"') :]
    field, errors = form[: form.index("</form>")].split('id="origin-error-web"')
    if origin:  # the typed value is kept, to be corrected rather than typed again
        assert f'value="{origin}"' in field
    assert 'aria-invalid="true"' in field
    assert error in errors
    assert not AllowedOrigin.objects.exists()
    assert not platform_log(web).exists()


def test_removing_an_origin_not_listed_is_an_error_message(owner_client, space, web):
    response = owner_client.get(
        origins_url(space), {"action": "deny", "origin": "https://never.example"}, follow=True
    )
    (message,) = messages_of(response)
    assert "not an allowed origin" in message


def test_other_kinds_refuse_origins(owner_client, space, platform):
    response = allow(owner_client, space, "https://a.example", kind="ios")
    (message,) = messages_of(response)
    assert "only web platforms" in message
    assert not AllowedOrigin.objects.exists()


def test_get_only_redirects_to_the_page(owner_client, space, web):
    response = owner_client.get(origins_url(space))
    assert response.status_code == 302
    assert response["Location"].endswith(settings_url(space) + "#platform-web")


def test_unknown_action_or_platform(owner_client, space, web):
    response = owner_client.post(origins_url(space), {"action": "purge", "origin": "https://a.e"})
    assert response.status_code == 302
    assert not AllowedOrigin.objects.exists()
    assert owner_client.post(origins_url(space, "roku"), {"action": "allow"}).status_code == 404
    assert owner_client.post(origins_url(space, "psx"), {"action": "allow"}).status_code == 404


def test_a_viewer_sees_the_list_but_no_buttons_and_is_refused(client, space, web):
    origins.allow_origin(web, "https://a.example", access.get_cli_actor())
    viewer = UserFactory(username="vera")
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    body = client.get(settings_url(space)).content.decode()
    assert 'data-origin="https://a.example"' in body
    assert "ti-remove-origin" not in body and 'id="allow-origin-web"' not in body
    assert (
        client.post(
            origins_url(space), {"action": "allow", "origin": "https://b.example"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            origins_url(space), {"action": "deny", "origin": "https://a.example"}
        ).status_code
        == 403
    )
    assert origins.allowed_origins(web) == ["https://a.example"]


def test_an_admin_of_another_space_gets_404(client, space, web):
    stranger = UserFactory(username="stranger")
    MembershipFactory(space=SpaceFactory(slug="theirs"), user=stranger, role=Role.OWNER)
    client.force_login(stranger)
    response = client.post(origins_url(space), {"action": "allow", "origin": "https://b.example"})
    assert response.status_code == 404
    assert not AllowedOrigin.objects.exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OWNER])
def test_admins_and_owners_may_change_the_list(client, space, web, role):
    user = UserFactory(username=f"u-{role}")
    MembershipFactory(space=space, user=user, role=role)
    client.force_login(user)
    allow(client, space, "https://a.example")
    assert origins.allowed_origins(web) == ["https://a.example"]


def test_csrf_is_checked(owner, space, web):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(origins_url(space), {"action": "allow", "origin": "https://a.example"})
    assert response.status_code == 403
    assert not AllowedOrigin.objects.exists()
