"""Query counts of the admin: the lists, the Trusted Identity page and the reveal do not
run more queries as rows, platforms and counts grow.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from trusted_identity.models import Role
from trusted_identity.services import access, key_sources, platform_secrets, public_keys

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from ..keytoken_helpers import private_keys, public_pem_of
from .helpers import action_url, add_figures, settings_url

KEYS = private_keys()


def make_spaces(count, user, start=0):
    for index in range(start, start + count):
        space = SpaceFactory(slug=f"s{index:03d}")
        PlatformFactory(space=space, kind="ios")
        PlatformFactory(space=space, kind="web", enforced=index % 2 == 0)
        MembershipFactory(space=space, user=user, role=Role.OWNER)
        MembershipFactory(space=space, role=Role.VIEWER)


def count_queries(client, url, **params):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(ctx.captured_queries), response


@pytest.mark.parametrize("as_superuser", [False, True])
@pytest.mark.parametrize(
    "url_name",
    [
        "admin:trusted_identity_space_changelist",
        "admin:trusted_identity_platform_changelist",
        "admin:trusted_identity_spacemembership_changelist",
    ],
)
def test_list_queries_do_not_grow_with_rows(
    client, db, django_assert_max_num_queries, as_superuser, url_name
):
    user = UserFactory(username="lister", is_superuser=as_superuser)
    client.force_login(user)
    make_spaces(3, user)
    url = reverse(url_name)
    with_3, _ = count_queries(client, url)
    make_spaces(27, user, start=3)
    with django_assert_max_num_queries(with_3):
        response = client.get(url)
    assert response.context["cl"].result_count >= 30


def test_settings_page_queries_do_not_grow_with_platforms_or_counts(
    owner_client, space, django_assert_max_num_queries
):
    cli = access.get_cli_actor()
    ios = PlatformFactory(space=space, kind="ios")
    add_figures(ios, valid=5, missing=1)
    public_keys.add_public_key(ios, public_pem_of(KEYS["ES256"]), cli, kid="k1")
    with_1, _ = count_queries(owner_client, settings_url(space))
    for kind in ("web", "android", "tvos", "androidtv", "roku"):
        platform = PlatformFactory(space=space, kind=kind)
        platform_secrets.rotate_secret(platform, cli, timedelta(hours=1))
        for day in range(8):
            add_figures(platform, valid=9, invalid=1, visitor=3, hours_ago=day * 24 + 1)
        for alg in ("EdDSA", "RS256"):  # more keys, one public-key-only platform
            public_keys.add_public_key(platform, public_pem_of(KEYS[alg]), cli, kid=alg)
        if kind == "roku":
            key_sources.set_key_source(platform, "public-key", cli, force=True, reason="r")
    with django_assert_max_num_queries(with_1):
        response = owner_client.get(settings_url(space))
    assert len(response.context["platforms"]) == 6


def test_reveal_queries_are_bounded(owner_client, space, platform, django_assert_max_num_queries):
    for kind in ("web", "android", "tvos", "androidtv", "roku"):
        PlatformFactory(space=space, kind=kind)
    # The page reads figures, versions, reasons, secret use, failures, the public keys
    # and their use, the deletions of secrets and the last enforcement, signature-form
    # and key-source changes of every platform at once: a fixed number, whatever the
    # count (one query each; the failure log's footer and the keys' use one more; the
    # JWKS URLs one, two once any platform has one). The reveal's audit writes an
    # AuditEvent too.
    with django_assert_max_num_queries(34):
        owner_client.post(action_url(space, "reveal_secret", "ios"))
