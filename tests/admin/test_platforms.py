"""The platforms' admin (``trusted_identity.admin.platforms``): the list, the read-only
platform page, adding a platform through the service, and the rotate action.
"""

from django.urls import reverse

from trusted_identity.models import Platform, PlatformSecret, Role
from trusted_identity.services import key_sources, public_keys

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from ..keytoken_helpers import private_keys, public_pem_of
from .helpers import (
    PLATFORM_LIST,
    add_figures,
    current_secret,
    messages_of,
    platform_log,
    settings_url,
)


def test_platform_list_judges_by_users_not_starts(owner_client, space, platform):
    """One user replayed 300 times is one user: the column says so, as the page does."""
    from ..factories import OutcomeCountFactory

    OutcomeCountFactory(platform=platform, outcome="valid", count=300, users=1)
    OutcomeCountFactory(platform=platform, outcome="missing", count=3)
    body = owner_client.get(reverse(PLATFORM_LIST), {"space": space.pk}).content.decode()
    assert "25.0% of 4" in body


def test_platform_list_links_to_its_space_and_page(owner_client, space, platform):
    add_figures(platform, valid=3, missing=1)
    response = owner_client.get(reverse(PLATFORM_LIST), {"space": space.pk})
    body = response.content.decode()
    assert reverse("admin:trusted_identity_space_change", args=[space.pk]) in body
    assert f"{settings_url(space)}#platform-ios" in body
    assert "75.0% of 4" in body  # valid share of the window's distinct users


def test_platform_change_page_is_read_only_and_links_to_settings(owner_client, space, platform):
    url = reverse("admin:trusted_identity_platform_change", args=[platform.pk])
    response = owner_client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert platform.api_key in body  # public
    assert f"{settings_url(space)}#platform-ios" in body
    assert 'name="_save"' not in body  # nothing to edit
    assert owner_client.post(url, {"kind": "web"}).status_code == 403


def test_add_platform_through_the_admin_uses_the_service(owner_client, space, owner):
    response = owner_client.post(
        reverse("admin:trusted_identity_platform_add"), {"space": space.pk, "kind": "roku"}
    )
    platform = Platform.objects.get(space=space, kind="roku")
    assert response.status_code == 302
    assert response["Location"].endswith(f"{settings_url(space)}#platform-roku")
    assert platform.api_key.startswith("tik_")
    assert current_secret(platform).startswith("tis_roku_")
    entries = platform_log(platform)
    assert [e.get_change_message() for e in entries] == ["Added the platform with a new secret."]
    assert entries[0].user == owner
    # One platform per kind: the form says so instead of failing.
    again = owner_client.post(
        reverse("admin:trusted_identity_platform_add"), {"space": space.pk, "kind": "roku"}
    )
    assert again.status_code == 200
    assert again.context["adminform"].form.errors


# --------------------------------------------------------- the rotate action


def test_rotate_action_has_an_intermediate_page_like_delete_selected(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web")
    old = {p.pk: current_secret(p) for p in (platform, web)}
    response = owner_client.post(
        reverse(PLATFORM_LIST),
        {"action": "rotate_secrets", "_selected_action": [platform.pk, web.pk], "index": "0"},
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Rotate Trusted Identity secrets?" in body
    assert body.count('name="_selected_action"') == 2
    assert '<input type="hidden" name="action" value="rotate_secrets">' in body
    assert '<input type="hidden" name="post" value="yes">' in body
    assert 'name="grace"' in body
    assert {p.pk: current_secret(p) for p in (platform, web)} == old

    done = owner_client.post(
        reverse(PLATFORM_LIST),
        {
            "action": "rotate_secrets",
            "_selected_action": [platform.pk, web.pk],
            "post": "yes",
            "grace": "0",
        },
        follow=True,
    )
    new = {p.pk: current_secret(p) for p in (platform, web)}
    assert all(new[pk] != old[pk] for pk in old)
    assert not any(secret in done.content.decode() for secret in (*old.values(), *new.values()))
    assert any("Rotated the secrets of" in m for m in messages_of(done))
    for p in (platform, web):
        assert platform_log(p).last().get_change_message().startswith("Rotated the secret")


def test_rotate_action_leaves_out_platforms_the_user_may_not_rotate(client, space, platform):
    other_space = SpaceFactory(slug="globex")
    other = PlatformFactory(space=other_space, kind="android")
    user = UserFactory(username="split")
    MembershipFactory(space=space, user=user, role=Role.ADMIN)
    MembershipFactory(space=other_space, user=user, role=Role.VIEWER)
    client.force_login(user)
    ids = [platform.pk, other.pk]
    page = client.post(
        reverse(PLATFORM_LIST), {"action": "rotate_secrets", "_selected_action": ids, "index": "0"}
    )
    body = page.content.decode()
    assert page.status_code == 200
    assert body.count('name="_selected_action"') == 1
    assert "1 selected platform is left out" in body
    old_other = current_secret(other)
    client.post(
        reverse(PLATFORM_LIST),
        {"action": "rotate_secrets", "_selected_action": ids, "post": "yes", "grace": "1h"},
    )
    assert current_secret(other) == old_other
    assert platform_log(other).filter(change_message__startswith="Rotated").count() == 0
    assert platform_log(platform).filter(change_message__startswith="Rotated").count() == 1


def test_rotate_action_is_not_offered_to_viewers(client, space, platform):
    viewer = UserFactory(username="vera")
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    response = client.get(reverse(PLATFORM_LIST))
    assert "rotate_secrets" not in response.content.decode()


def test_rotate_action_leaves_out_platforms_that_verify_public_keys_only(
    owner_client, space, platform, cli_actor
):
    web = PlatformFactory(space=space, kind="web")
    public_keys.add_public_key(web, public_pem_of(private_keys()["EdDSA"]), cli_actor, kid="k")
    key_sources.set_key_source(web, "public-key", cli_actor, force=True, reason="moved")
    ids = [platform.pk, web.pk]
    page = owner_client.post(
        reverse(PLATFORM_LIST), {"action": "rotate_secrets", "_selected_action": ids, "index": "0"}
    )
    body = page.content.decode()
    assert body.count('name="_selected_action"') == 1
    assert "1 selected platform is left out: it verifies public keys only" in body
    old = current_secret(platform)
    owner_client.post(
        reverse(PLATFORM_LIST),
        {"action": "rotate_secrets", "_selected_action": ids, "post": "yes", "grace": "1h"},
    )
    assert current_secret(platform) != old  # the one with a secret rotated
    assert not PlatformSecret.objects.filter(platform=web).exists()  # none made for the other
    # Only public-key platforms selected: nothing to do, said so.
    response = owner_client.post(
        reverse(PLATFORM_LIST),
        {"action": "rotate_secrets", "_selected_action": [web.pk], "index": "0"},
        follow=True,
    )
    assert any("verifies public keys only" in m for m in messages_of(response))
