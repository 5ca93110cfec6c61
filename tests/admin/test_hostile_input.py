"""Every admin page of the app, fed characters PostgreSQL refuses (NUL) and other junk,
answers as a form error, an empty result or a 4xx: never a 500.

Staff are not attackers, but a pasted value, a browser extension or a crafted link
must not take a page down or leave a traceback in the logs. Runs on SQLite and, in
``make test-postgres``, on PostgreSQL, whose driver refuses NUL in any string.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from trusted_identity.models import Platform

from ..factories import PlatformFactory, SuperuserFactory

JUNK = ["\x00", "1\x00", "\x00web", "%00", "\u202e", "x" * 5000, "' OR 1=1 --", "-1", "1e9"]

#: The app's admin lists with the query parameters their filters and search take.
CHANGELISTS = {
    "admin:trusted_identity_space_changelist": ["q", "enforced", "o", "p"],
    "admin:trusted_identity_platform_changelist": ["q", "space", "space__id__exact", "kind"],
    "admin:trusted_identity_spacemembership_changelist": ["q", "space", "role"],
    "admin:trusted_identity_failurerecord_changelist": [
        "q",
        "space",
        "outcome",
        "reason",
        "platform__kind",
        "platform__kind__exact",
        "outcome__exact",
        "reason__exact",
    ],
}


@pytest.fixture
def admin_client(client, db):
    client.force_login(SuperuserFactory(username="root"))
    return client


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


def _no_server_error(response, what):
    assert response.status_code < 500, f"{what} answered {response.status_code}"


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize(("name", "params"), CHANGELISTS.items(), ids=list(CHANGELISTS))
def test_lists_filters_and_searches_take_junk(admin_client, web, name, params, junk):
    url = reverse(name)
    for param in params:
        _no_server_error(admin_client.get(url, {param: junk}), f"{name}?{param}={junk!r}")


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("model", ["space", "platform", "spacemembership"])
def test_add_forms_take_junk_initial_values_and_posts(admin_client, web, model, junk):
    url = reverse(f"admin:trusted_identity_{model}_add")
    for field in ("space", "kind", "user", "role", "slug", "name"):
        _no_server_error(admin_client.get(url, {field: junk}), f"{model} add ?{field}")
        _no_server_error(
            admin_client.post(url, {field: junk, "space": junk}), f"{model} add POST {field}"
        )


@pytest.mark.parametrize("junk", JUNK)
def test_autocomplete_takes_junk_terms(admin_client, web, junk):
    url = reverse("admin:autocomplete")
    for target in (("platform", "space"), ("spacemembership", "space")):
        query = {
            "term": junk,
            "app_label": "trusted_identity",
            "model_name": target[0],
            "field_name": target[1],
        }
        _no_server_error(admin_client.get(url, query), f"autocomplete {target}")


@pytest.mark.parametrize("junk", ["\x00", "1\x00", "\x00web", "%00", "x" * 300])
def test_change_pages_and_object_ids_take_junk(admin_client, web, junk):
    for model in ("space", "platform", "spacemembership", "failurerecord"):
        url = reverse(f"admin:trusted_identity_{model}_change", args=[junk])
        _no_server_error(admin_client.get(url), f"{model} change {junk!r}")


SPACE_VIEWS = [
    "trusted_identity_space_reveal_secret",
    "trusted_identity_space_rotate_secret",
    "trusted_identity_space_revoke_previous",
    "trusted_identity_space_enforcement",
    "trusted_identity_space_signature_form",
    "trusted_identity_space_origins",
    "trusted_identity_space_test_signature",
]

POST_FIELDS = [
    "post",
    "grace",
    "enabled",
    "force",
    "reason",
    "form",
    "max_age",
    "origin",
    "remove",
    "user_id",
    "signature",
]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("view", SPACE_VIEWS)
def test_the_trusted_identity_pages_take_junk(admin_client, web, view, junk):
    space = web.space
    for kind in ("web", junk):
        url = reverse(f"admin:{view}", args=[space.pk, kind])
        _no_server_error(admin_client.get(url, {"kind": junk}), f"{view} GET kind={kind!r}")
        _no_server_error(
            admin_client.post(url, dict.fromkeys(POST_FIELDS, junk)), f"{view} POST kind={kind!r}"
        )
    page = reverse("admin:trusted_identity_space_trusted_identity", args=[space.pk])
    _no_server_error(admin_client.get(page, {"tester": junk}), "settings page")
    assert Platform.objects.get(pk=web.pk).enforced is False  # junk changed nothing
