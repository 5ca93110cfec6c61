"""The space filter of the platform and membership lists: found by typing, never a list
of every space, scoped to what the user may see."""

import json
import re

import pytest
from django.urls import reverse

from trusted_identity.models import Role

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory

PLATFORMS = "admin:trusted_identity_platform_changelist"
MEMBERS = "admin:trusted_identity_spacemembership_changelist"


def _spaces(count, start=0):
    return [
        PlatformFactory(space=SpaceFactory(slug=f"s{n:04d}", name=f"Space {n}"), kind="ios")
        for n in range(start, start + count)
    ]


def _sidebar(page: str) -> str:
    """The filter sidebar alone (before or after the results, as Django versions place it)."""
    sidebar = page.split('id="changelist-filter"')[1]
    return re.split(r"</(?:nav|search)>", sidebar)[0]  # <nav> up to Django 5.2, <search> on 6


@pytest.mark.parametrize("url_name", [PLATFORMS, MEMBERS])
def test_the_sidebar_lists_no_spaces_however_many_there_are(admin_client, url_name):
    _spaces(5)
    few = _sidebar(admin_client.get(reverse(url_name)).content.decode())
    _spaces(200, start=5)
    many = _sidebar(admin_client.get(reverse(url_name)).content.decode())
    assert "data-ti-space-filter" in few and "data-ti-space-filter" in many
    assert "Space 3" not in many  # no link per space
    assert len(many) == len(few)  # the sidebar does not grow with spaces


def test_choosing_a_space_filters_and_shows_that_space(admin_client):
    first, second = _spaces(2)
    page = admin_client.get(reverse(PLATFORMS), {"space": first.space_id, "kind": "ios"})
    body = page.content.decode()
    assert page.context["cl"].result_count == 1
    assert f">{first.space.name} ({first.space.slug})</a>" in body  # the chosen one, selected
    assert 'name="kind" value="ios"' in body  # other filters kept when choosing anew
    assert second.space.slug not in _sidebar(body)


def test_a_space_the_user_may_not_see_filters_to_nothing(client, db):
    mine, theirs = _spaces(2)
    viewer = UserFactory()
    MembershipFactory(space=mine.space, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    page = client.get(reverse(PLATFORMS), {"space": theirs.space_id})
    assert page.context["cl"].result_count == 0
    assert theirs.space.slug not in page.content.decode()
    assert client.get(reverse(PLATFORMS), {"space": "x\x00"}).status_code == 200


def _autocomplete(client, model_name, purpose=None, term=""):
    params = {
        "app_label": "trusted_identity",
        "model_name": model_name,
        "field_name": "space",
        "term": term,
    }
    if purpose:
        params["purpose"] = purpose
    response = client.get(reverse("admin:autocomplete"), params)
    assert response.status_code == 200
    return sorted(item["text"] for item in json.loads(response.content)["results"])


def test_the_filter_search_offers_every_visible_space_and_no_other(client, db):
    viewed, owned, other = _spaces(3)
    user = UserFactory()
    MembershipFactory(space=viewed.space, user=user, role=Role.VIEWER)
    MembershipFactory(space=owned.space, user=user, role=Role.OWNER)
    client.force_login(user)
    visible = sorted(str(p.space) for p in (viewed, owned))
    assert _autocomplete(client, "platform", purpose="filter") == visible
    assert _autocomplete(client, "spacemembership", purpose="filter") == visible
    # The add form's field still offers only the spaces its action allows.
    assert _autocomplete(client, "platform") == [str(owned.space)]
    assert _autocomplete(client, "platform", purpose="filter", term="Space 2") == []
    assert str(other.space) not in _autocomplete(client, "platform", purpose="filter")


def test_show_all_is_a_deliberate_thousand(admin_client):
    _spaces(250)
    page = admin_client.get(reverse(PLATFORMS) + "?all=")
    assert page.context["cl"].show_all
    assert len(page.context["cl"].result_list) == 250  # Django's default stops at 200
