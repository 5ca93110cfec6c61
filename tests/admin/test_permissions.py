"""Who may request what in the admin console: every admin URL and POST, for every role.

Each case runs on a fresh database with two tenants: ``acme`` (ios and web; an owner,
an admin and a viewer) and ``globex`` (android; its owner is the "outsider"). After
each request, no plaintext secret or ciphertext of any platform may appear in the
HTML, except the one revealed secret in an allowed Reveal response.
"""

from types import SimpleNamespace

import django
import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from trusted_identity.models import Platform, PlatformSecret, PublicKey, Role
from trusted_identity.services import access, platform_secrets, public_keys

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from ..keytoken_helpers import private_keys, public_pem_of

ROLES = ("root", "owner", "admin", "viewer", "outsider", "nospace", "anon")
KEYS = private_keys()


@pytest.fixture
def world(db, superuser):
    acme = SpaceFactory(slug="acme", name="Acme")
    globex = SpaceFactory(slug="globex", name="Globex")
    ios = PlatformFactory(space=acme, kind="ios")
    public_keys.add_public_key(ios, public_pem_of(KEYS["ES256"]), access.get_cli_actor(), kid="k1")
    web = PlatformFactory(space=acme, kind="web")
    android = PlatformFactory(space=globex, kind="android")
    users = {"root": superuser}
    for name, space, role in (
        ("owner", acme, Role.OWNER),
        ("admin", acme, Role.ADMIN),
        ("viewer", acme, Role.VIEWER),
        ("outsider", globex, Role.OWNER),
    ):
        users[name] = UserFactory(username=name)
        MembershipFactory(space=space, user=users[name], role=role)
    users["nospace"] = UserFactory(username="nospace")
    return SimpleNamespace(acme=acme, globex=globex, ios=ios, web=web, android=android, users=users)


def every_secret_and_ciphertext():
    """(plaintext, ciphertext) of every secret row, current and retired, of every platform."""
    return [(row.get_secret(), row.ciphertext) for row in PlatformSecret.objects.all()]


def space_url(name, w, *extra):
    return reverse(f"admin:trusted_identity_space_{name}", args=[w.acme.pk, *extra])


def platform_url(name, w):
    return reverse(f"admin:trusted_identity_platform_{name}", args=[w.ios.pk])


CHANGELIST = "admin:trusted_identity_platform_changelist"


def rotate_action_data(w, confirm=False):
    data = {"action": "rotate_secrets", "_selected_action": [w.ios.pk, w.web.pk]}
    if confirm:
        data.update(post="yes", grace="1h")
    else:
        data["index"] = "0"
    return data


#: name: (method, url(w), data(w) or None, expected status per role in ROLES order)
MATRIX = {
    "space list": (
        "get",
        lambda w: reverse("admin:trusted_identity_space_changelist"),
        None,
        (200, 200, 200, 200, 200, 200, 302),
    ),
    "space change": (
        "get",
        lambda w: space_url("change", w),
        None,
        (200, 200, 200, 200, 302, 302, 302),
    ),
    "space change POST": (
        "post",
        lambda w: space_url("change", w),
        lambda w: {"slug": "acme", "name": "Renamed"},
        (302, 302, 403, 403, 302, 403, 302),
    ),
    "space add": (
        "get",
        lambda w: reverse("admin:trusted_identity_space_add"),
        None,
        (200, 403, 403, 403, 403, 403, 302),
    ),
    "space delete": (
        "get",
        lambda w: space_url("delete", w),
        None,
        (200, 403, 403, 403, 403, 403, 302),
    ),
    "space history": (
        "get",
        lambda w: space_url("history", w),
        None,
        (200, 200, 200, 200, 302, 302, 302),
    ),
    "settings page": (
        "get",
        lambda w: space_url("trusted_identity", w),
        None,
        (200, 200, 200, 200, 404, 404, 302),
    ),
    "reveal POST": (
        "post",
        lambda w: space_url("reveal_secret", w, "ios"),
        lambda w: {},
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "rotate POST": (
        "post",
        lambda w: space_url("rotate_secret", w, "ios"),
        lambda w: {"grace": "24h"},
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "rotate POST confirmed": (
        "post",
        lambda w: space_url("rotate_secret", w, "ios"),
        lambda w: {"grace": "1h", "post": "yes"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "enforce POST": (
        "post",
        lambda w: space_url("enforcement", w, "ios"),
        lambda w: {"enabled": "on"},
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "enforce POST confirmed": (
        "post",
        lambda w: space_url("enforcement", w, "ios"),
        lambda w: {"enabled": "on", "post": "yes", "override": "on", "reason": "matrix"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "signature form POST": (
        "post",
        lambda w: space_url("signature_form", w, "ios"),
        lambda w: {"form": "token", "max_age": "1h"},
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "signature form POST confirmed": (
        "post",
        lambda w: space_url("signature_form", w, "ios"),
        lambda w: {
            "form": "token",
            "max_age": "1h",
            "post": "yes",
            "override": "on",
            "reason": "matrix",
        },
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "revoke previous": (
        "get",
        lambda w: space_url("revoke_previous", w, "ios"),
        None,
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "revoke previous POST confirmed": (
        "post",
        lambda w: space_url("revoke_previous", w, "ios"),
        lambda w: {"post": "yes"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "key source POST": (
        "post",
        lambda w: space_url("key_source", w, "ios"),
        lambda w: {"source": "both"},
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "key source POST confirmed": (
        "post",
        lambda w: space_url("key_source", w, "ios"),
        lambda w: {"source": "both", "post": "yes"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "public key add POST": (
        "post",
        lambda w: space_url("public_keys", w, "ios"),
        lambda w: {"action": "add", "key": public_pem_of(KEYS["EdDSA"]), "kid": "k2"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "public key expire page": (
        "get",
        lambda w: space_url("public_keys", w, "ios") + "?action=expire&kid=k1",
        None,
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "public key expire POST confirmed": (
        "post",
        lambda w: space_url("public_keys", w, "ios"),
        lambda w: {"action": "expire", "kid": "k1", "post": "yes"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "public key remove POST": (
        "post",
        lambda w: space_url("public_keys", w, "ios"),
        lambda w: {"action": "remove", "kid": "k1"},
        (200, 200, 200, 403, 404, 404, 302),
    ),
    "public key remove POST confirmed": (
        "post",
        lambda w: space_url("public_keys", w, "ios"),
        lambda w: {"action": "remove", "kid": "k1", "post": "yes"},
        (302, 302, 302, 403, 404, 404, 302),
    ),
    "platform list": (
        "get",
        lambda w: reverse(CHANGELIST),
        None,
        (200, 200, 200, 200, 200, 200, 302),
    ),
    "platform change": (
        "get",
        lambda w: platform_url("change", w),
        None,
        (200, 200, 200, 200, 302, 302, 302),
    ),
    "platform history": (
        "get",
        lambda w: platform_url("history", w),
        None,
        (200, 200, 200, 200, 302, 302, 302),
    ),
    "platform add": (
        "get",
        lambda w: reverse("admin:trusted_identity_platform_add"),
        None,
        (200, 200, 200, 403, 200, 403, 302),
    ),
    "platform delete": (
        "get",
        lambda w: platform_url("delete", w),
        None,
        (200, 200, 403, 403, 302, 403, 302),
    ),
    # Without the action (viewer, nospace) the POST just shows the list again.
    "rotate action page": (
        "post",
        lambda w: reverse(CHANGELIST),
        lambda w: rotate_action_data(w),
        (200, 200, 200, 200, 302, 200, 302),
    ),
    "rotate action confirmed": (
        "post",
        lambda w: reverse(CHANGELIST),
        lambda w: rotate_action_data(w, confirm=True),
        (302, 302, 302, 200, 302, 200, 302),
    ),
    "membership list": (
        "get",
        lambda w: reverse("admin:trusted_identity_spacemembership_changelist"),
        None,
        (200, 200, 200, 200, 200, 200, 302),
    ),
    "membership add": (
        "get",
        lambda w: reverse("admin:trusted_identity_spacemembership_add"),
        None,
        (200, 200, 403, 403, 200, 403, 302),
    ),
    "membership change": (
        "get",
        lambda w: reverse(
            "admin:trusted_identity_spacemembership_change",
            args=[w.acme.memberships.get(user__username="viewer").pk],
        ),
        None,
        (200, 200, 200, 200, 302, 302, 302),
    ),
    "space autocomplete": (
        "get",
        lambda w: (
            reverse("admin:autocomplete")
            + "?app_label=trusted_identity&model_name=platform&field_name=space&term="
        ),
        None,
        (200, 200, 200, 200, 200, 200, 302),
    ),
}

# Django 6.1's change form checks view-or-change permission before it looks for the
# object, for a POST too: a staff user who can see no space is told the space doesn't
# exist (302 to the index, as an outsider is) instead of 403. Nothing changes either way.
if django.VERSION >= (6, 1):
    MATRIX["space change POST"] = (
        *MATRIX["space change POST"][:3],
        (302, 302, 403, 403, 302, 302, 302),
    )

CASES = [
    pytest.param(name, role, expected[index], id=f"{name}-{role}")
    for name, (_method, _url, _data, expected) in MATRIX.items()
    for index, role in enumerate(ROLES)
]


@pytest.mark.parametrize(("name", "role", "expected"), CASES)
def test_permission_matrix(client, world, name, role, expected):
    method, url, data, _ = MATRIX[name]
    if role != "anon":
        client.force_login(world.users[role])
    current_before = set(
        PlatformSecret.objects.filter(retired_at__isnull=True).values_list("pk", flat=True)
    )
    keys_before = key_state(world.ios)
    send = getattr(client, method)
    response = send(url(world), data(world)) if data else send(url(world))

    assert response.status_code == expected, response.content[:500]
    if role == "anon":
        assert "/admin/login/" in response["Location"]

    body = response.content.decode()
    revealed_ok = name == "reveal POST" and expected == 200
    ios_secret = platform_secrets.reveal_secret(world.ios, access.get_cli_actor())
    for plaintext, ciphertext in every_secret_and_ciphertext():
        assert ciphertext not in body
        if revealed_ok and plaintext == ios_secret:
            assert plaintext in body
            assert "no-store" in response["Cache-Control"]
        else:
            assert plaintext not in body, f"a secret leaked into {name} for {role}"

    current_after = set(
        PlatformSecret.objects.filter(retired_at__isnull=True).values_list("pk", flat=True)
    )
    rotated = name in ("rotate POST confirmed", "rotate action confirmed") and expected == 302
    if rotated and role not in ("outsider", "anon"):
        assert current_after != current_before
    else:
        assert current_after == current_before, f"{name} as {role} rotated a secret"
    enforced = Platform.objects.get(pk=world.ios.pk).enforced
    assert enforced == (name == "enforce POST confirmed" and expected == 302 and role != "anon")
    changed_keys = key_state(world.ios) != keys_before
    assert changed_keys == (name in KEY_CHANGES and expected == 302 and role != "anon"), name


#: The requests that change a platform's keys or key source when allowed.
KEY_CHANGES = {
    "key source POST confirmed",
    "public key add POST",
    "public key expire POST confirmed",
    "public key remove POST confirmed",
}


def key_state(platform):
    """What a platform verifies with: its key source, and its keys with their expiry."""
    source = Platform.objects.get(pk=platform.pk).key_source
    return source, sorted(
        PublicKey.objects.filter(platform=platform).values_list("kid", "expires_at")
    )


@pytest.mark.parametrize(
    ("role", "slugs"),
    [
        ("root", {"acme", "globex"}),
        ("owner", {"acme"}),
        ("admin", {"acme"}),
        ("viewer", set()),  # a viewer can't add platforms, so no space is offered
        ("outsider", {"globex"}),
        ("nospace", set()),
    ],
)
def test_space_autocomplete_offers_only_spaces_the_form_may_use(client, world, role, slugs):
    client.force_login(world.users[role])
    url = reverse("admin:autocomplete")
    response = client.get(
        url, {"app_label": "trusted_identity", "model_name": "platform", "field_name": "space"}
    )
    assert response.status_code == 200
    assert {item["text"] for item in response.json()["results"]} == {
        str(s) for s in (world.acme, world.globex) if s.slug in slugs
    }


@pytest.mark.parametrize(
    ("role", "slugs"),
    [
        ("root", {"acme", "globex"}),
        ("owner", {"acme"}),
        ("admin", set()),  # only owners manage members
        ("outsider", {"globex"}),
    ],
)
def test_membership_space_autocomplete(client, world, role, slugs):
    client.force_login(world.users[role])
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "trusted_identity", "model_name": "spacemembership", "field_name": "space"},
    )
    assert {item["text"] for item in response.json()["results"]} == {
        str(s) for s in (world.acme, world.globex) if s.slug in slugs
    }


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("root", {"Acme", "Globex"}),
        ("owner", {"Acme"}),
        ("viewer", {"Acme"}),
        ("outsider", {"Globex"}),
        ("nospace", set()),
    ],
)
def test_lists_and_filters_show_only_the_users_spaces(client, world, role, visible):
    client.force_login(world.users[role])
    for url in (
        reverse("admin:trusted_identity_space_changelist"),
        reverse(CHANGELIST),
        reverse("admin:trusted_identity_spacemembership_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 200
        results = list(response.context["cl"].result_list)
        spaces = {getattr(obj, "space", obj).name for obj in results}
        assert spaces == visible, url
        body = response.content.decode()
        for hidden in {"Acme", "Globex"} - visible:
            assert hidden not in body, f"{hidden} shown on {url} to {role}"


def test_filtering_on_another_tenants_space_shows_nothing(client, world):
    client.force_login(world.users["outsider"])
    response = client.get(reverse(CHANGELIST), {"space": world.acme.pk})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert world.ios.api_key not in response.content.decode()


def test_staff_without_space_sees_empty_lists(client, world):
    client.force_login(world.users["nospace"])
    response = client.get(reverse("admin:trusted_identity_space_changelist"))
    assert response.context["cl"].result_count == 0
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200


def test_platform_add_form_offers_only_spaces_where_the_user_may_rotate(client, world):
    MembershipFactory(space=world.globex, user=world.users["admin"], role=Role.VIEWER)
    client.force_login(world.users["admin"])
    response = client.get(reverse("admin:trusted_identity_platform_add"))
    queryset = response.context["adminform"].form.fields["space"].queryset
    assert set(queryset) == {world.acme}
    # A space outside the choices is refused by the form, whatever the POST says.
    response = client.post(
        reverse("admin:trusted_identity_platform_add"), {"space": world.globex.pk, "kind": "roku"}
    )
    assert response.status_code == 200
    assert "space" in response.context["adminform"].form.errors
    assert not Platform.objects.filter(kind="roku").exists()


def test_membership_add_form_offers_only_spaces_the_owner_manages(client, world):
    MembershipFactory(space=world.globex, user=world.users["owner"], role=Role.ADMIN)
    client.force_login(world.users["owner"])
    response = client.get(reverse("admin:trusted_identity_spacemembership_add"))
    form = response.context["adminform"].form
    assert set(form.fields["space"].queryset) == {world.acme}
    assert "user" not in form.fields  # a username is typed: no list of the site's users
    response = client.post(
        reverse("admin:trusted_identity_spacemembership_add"),
        {"space": world.globex.pk, "username": "nospace", "role": "viewer"},
    )
    assert response.status_code == 200
    assert not world.globex.memberships.filter(user__username="nospace").exists()


@pytest.mark.parametrize("role", ["viewer", "outsider", "nospace"])
def test_settings_actions_are_refused_without_a_log_entry(client, world, role):
    client.force_login(world.users[role])
    before = LogEntry.objects.count()
    for name in (
        "reveal_secret",
        "rotate_secret",
        "revoke_previous",
        "enforcement",
        "signature_form",
        "key_source",
        "public_keys",
    ):
        response = client.post(
            space_url(name, world, "ios"),
            {
                "post": "yes",
                "grace": "0",
                "enabled": "on",
                "form": "either",
                "max_age": "1h",
                "source": "both",
                "action": "remove",
                "kid": "k1",
            },
        )
        assert response.status_code in (403, 404)
    assert LogEntry.objects.count() == before
    assert PublicKey.objects.filter(platform=world.ios, kid="k1").exists()


def test_viewer_sees_figures_but_no_controls(client, world):
    client.force_login(world.users["viewer"])
    body = client.get(space_url("trusted_identity", world)).content.decode()
    assert 'data-platform="ios"' in body
    assert 'data-figure="valid"' in body
    for control in (">Reveal<", ">Rotate<", "Turn on enforcement", ">Copy<", "Remove…"):
        assert control not in body
    assert 'data-kid="k1"' in body  # the keys are shown, not their controls
    assert 'name="key"' not in body and 'name="source"' not in body


@pytest.mark.parametrize("role", ["root", "owner", "admin"])
def test_admins_see_every_control(client, world, role):
    client.force_login(world.users[role])
    body = client.get(space_url("trusted_identity", world)).content.decode()
    for control in (">Reveal<", ">Rotate<", ">Turn on enforcement<", 'name="key"'):
        assert body.count(control) == 2  # one per platform of acme
    assert body.count('name="source"') == 2 and body.count(">Remove…<") == 1  # ios's key
    assert ">Copy<" not in body  # only once revealed


def test_unknown_platform_kind_is_404(client, world):
    client.force_login(world.users["owner"])
    assert client.get(space_url("rotate_secret", world, "roku")).status_code == 404
    assert client.post(space_url("reveal_secret", world, "nonsense")).status_code == 404


def test_inactive_staff_is_sent_to_login(client, world):
    user = world.users["owner"]
    user.is_active = False
    user.save()
    client.force_login(user)
    response = client.get(space_url("trusted_identity", world))
    assert response.status_code == 302
