"""Every admin page of the app, fed characters PostgreSQL refuses (NUL) and other junk,
answers as a form error, an empty result or a 4xx: never a 500.

Staff are not attackers, but a pasted value, a browser extension or a crafted link
must not take a page down or leave a traceback in the logs. Runs on SQLite and, in
``make test-postgres``, on PostgreSQL, whose driver refuses NUL in any string.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from trusted_identity.models import Platform, PublicKey

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
    "trusted_identity_space_key_source",
    "trusted_identity_space_public_keys",
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
    "source",
    "action",
    "key",
    "kid",
    "expires",
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
    assert Platform.objects.get(pk=web.pk).key_source == "secret"
    assert not PublicKey.objects.exists()


@pytest.mark.parametrize("action", ["add", "expire", "remove", "\x00", ""])
@pytest.mark.parametrize("junk", JUNK)
def test_the_public_key_forms_take_junk_in_each_field(admin_client, web, action, junk):
    url = reverse("admin:trusted_identity_space_public_keys", args=[web.space.pk, "web"])
    for field in ("key", "kid", "expires"):
        data = {"action": action, "key": "k", "kid": "k", "expires": "1d", field: junk}
        _no_server_error(admin_client.post(url, data), f"public keys {action} {field}={junk!r}")
        _no_server_error(admin_client.post(url, {**data, "post": "yes"}), "confirmed")
        _no_server_error(admin_client.get(url, {"action": action, "kid": junk}), "confirm page")
    assert not PublicKey.objects.exists()


def _key_form_errors(response) -> str:
    assert response.status_code == 200
    body = response.content.decode()
    errors = re.search(r'<ul class="errorlist" id="key-errors-web">(.*?)</ul>', body, re.S)
    assert errors, "a form error beside the add form"
    return errors.group(1)


def test_a_huge_or_nul_paste_is_a_form_error(admin_client, web):
    url = reverse("admin:trusted_identity_space_public_keys", args=[web.space.pk, "web"])
    pem = "-----BEGIN PUBLIC KEY-----\n" + "A" * 64 + "\n-----END PUBLIC KEY-----\n"
    # Under Django's request limit: the form's own limit, said beside the field.
    big = admin_client.post(url, {"action": "add", "key": "A" * 2_000_000})
    assert "longer than 16 KiB" in _key_form_errors(big)
    assert "A" * 100 not in big.content.decode()  # never sent back
    nul = admin_client.post(url, {"action": "add", "key": pem.replace("\n", "\x00", 1)})
    assert "Null characters are not allowed" in _key_form_errors(nul)
    # Over DATA_UPLOAD_MAX_MEMORY_SIZE (a 5 MB body): Django refuses the request before any
    # view, as a 400; the browser's field takes at most 16,384 characters of a paste.
    huge = admin_client.post(url, {"action": "add", "key": "A" * 5_000_000})
    assert huge.status_code == 400
    assert not PublicKey.objects.exists()
