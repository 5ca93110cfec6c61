"""The failure log's read-only admin list: scoped to the user's spaces (viewers too),
filtered by space and kind, searched by user id, never editable."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from trusted_identity.models import FailureRecord, Role
from trusted_identity.services import counting

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from .helpers import settings_url

pytestmark = pytest.mark.django_db

LIST = "admin:trusted_identity_failurerecord_changelist"


def fail(platform, user_id, outcome="invalid", reason="no_match"):
    counting.record_start(platform.pk, outcome, user_id, reason=reason, form="plain")


@pytest.fixture
def viewer_client(client, space):
    viewer = UserFactory(is_staff=True)
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    return client


def test_a_viewer_sees_the_failures_of_their_spaces_only(viewer_client, space, platform):
    elsewhere = PlatformFactory(space=SpaceFactory(slug="elsewhere"), kind="ios")
    fail(platform, "mine-1")
    fail(elsewhere, "theirs-1")
    body = viewer_client.get(reverse(LIST)).content.decode()
    assert "mine-1" in body and "theirs-1" not in body
    other = FailureRecord.objects.get(user_id="theirs-1")
    change = reverse("admin:trusted_identity_failurerecord_change", args=[other.pk])
    assert viewer_client.get(change).status_code in (302, 403, 404)


def test_filters_by_space_and_kind_and_searches_by_user(viewer_client, space, platform):
    web = PlatformFactory(space=space, kind="web")
    fail(platform, "ios-user")
    fail(web, "web-user", outcome="missing", reason="")
    body = viewer_client.get(reverse(LIST), {"space": space.pk, "platform__kind": "web"})
    text = body.content.decode()
    assert "web-user" in text and "ios-user" not in text
    found = viewer_client.get(reverse(LIST), {"q": "ios-u"}).content.decode()
    assert "ios-user" in found and "web-user" not in found


def test_the_log_is_read_only(viewer_client, space, platform, superuser, client):
    fail(platform, "u")
    record = FailureRecord.objects.get()
    client.force_login(superuser)
    assert client.get(reverse("admin:trusted_identity_failurerecord_add")).status_code == 403
    delete = reverse("admin:trusted_identity_failurerecord_delete", args=[record.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert FailureRecord.objects.filter(pk=record.pk).exists()


def test_the_settings_page_links_to_a_platforms_whole_log(viewer_client, space, platform):
    fail(platform, "someone")
    body = viewer_client.get(settings_url(space)).content.decode()
    link = f"{reverse(LIST)}?space={space.pk}&amp;platform__kind=ios"
    assert f'href="{link}" id="all-failures-ios"' in body
    assert FailureRecord.objects.get().at <= timezone.now()


def test_the_outcome_filter_offers_only_logged_outcomes(viewer_client, space, platform):
    fail(platform, "bad-sig")
    fail(platform, "no-sig", outcome="missing", reason="missing")
    response = viewer_client.get(reverse(LIST))
    specs = response.context["cl"].filter_specs
    (spec,) = [s for s in specs if getattr(s, "parameter_name", None) == "outcome"]
    assert [value for value, _ in spec.lookup_choices] == ["invalid", "missing", "rejected"]
    only = viewer_client.get(reverse(LIST), {"outcome": "missing"}).content.decode()
    assert "no-sig" in only and "bad-sig" not in only
    nothing = viewer_client.get(reverse(LIST), {"outcome": "valid"})
    assert nothing.status_code == 200 and "bad-sig" not in nothing.content.decode()


def test_user_ids_show_control_and_bidi_characters(viewer_client, space, platform):
    fail(platform, "evil\u202egnp.exe\t")
    body = viewer_client.get(reverse(LIST)).content.decode()
    assert "evil&lt;U+202E&gt;gnp.exe&lt;U+0009&gt;" in body
    assert "\u202e" not in body
    found = viewer_client.get(reverse(LIST), {"q": "gnp.exe"}).content.decode()
    assert "evil&lt;U+202E&gt;" in found  # still searched by the id as stored
