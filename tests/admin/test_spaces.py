"""The spaces' admin (``trusted_identity.admin.spaces``): the list, the change page and
its link to the Trusted Identity page, the slug, adding a space.
"""

import pytest
from django.urls import reverse

from trusted_identity.models import Space
from trusted_identity.services import platform_secrets

from ..factories import PlatformFactory
from .helpers import PLATFORM_LIST, settings_url


def test_space_list_shows_enforcement_last_rotation_and_links(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web", enforced=True)
    response = owner_client.get(reverse("admin:trusted_identity_space_changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "on for 1 of 2" in body
    assert "2 platforms" in body
    assert f'{reverse(PLATFORM_LIST)}?space={space.pk}"' in body
    assert f'href="{settings_url(space)}"' in body
    row = response.context["cl"].result_list[0]
    assert row.ti_last_rotated_at == max(
        platform_secrets.current_secret_row(p).created_at for p in (platform, web)
    )
    assert row.ti_your_role == "owner"


def test_space_change_page_links_to_the_settings_page(owner_client, space, platform):
    response = owner_client.get(reverse("admin:trusted_identity_space_change", args=[space.pk]))
    body = response.content.decode()
    assert 'id="trusted-identity-link"' in body
    assert f'href="{settings_url(space)}"' in body
    assert "object-tools" in body


def test_space_slug_is_read_only_for_owners(owner_client, space):
    url = reverse("admin:trusted_identity_space_change", args=[space.pk])
    response = owner_client.post(url, {"slug": "stolen", "name": "Acme Inc"})
    assert response.status_code == 302
    space.refresh_from_db()
    assert (space.slug, space.name) == ("acme", "Acme Inc")


def test_superuser_adds_a_space(client, superuser, db):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:trusted_identity_space_add"), {"slug": "initech", "name": "Initech"}
    )
    assert response.status_code == 302
    assert Space.objects.filter(slug="initech").exists()


@pytest.mark.parametrize(
    ("name", "said"),
    [("Acme\nCorp", "U+000A"), ("Acme\x1b[2J", "U+001B"), ("evil\u202eexe", "U+202E")],
)
def test_a_space_name_that_would_forge_text_is_a_form_error(client, superuser, name, said):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:trusted_identity_space_add"), {"slug": "initech", "name": name}
    )
    assert response.status_code == 200
    assert any(said in error for error in response.context["adminform"].form.errors["name"])
    assert not Space.objects.filter(slug="initech").exists()


def test_a_space_name_too_long_is_a_form_error_not_a_database_error(client, superuser):
    client.force_login(superuser)
    response = client.post(
        reverse("admin:trusted_identity_space_add"), {"slug": "initech", "name": "x" * 5000}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"]
    assert not Space.objects.filter(slug="initech").exists()
