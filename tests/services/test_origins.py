"""services.origins: the CORS allow-list of web platforms (CONTRACT section 7)."""

import pytest

from tests.support import read_generation
from trusted_identity.exceptions import InvalidRequest, PermissionDenied
from trusted_identity.models import AllowedOrigin, AuditEvent, Role
from trusted_identity.services import access, origins
from trusted_identity.services.lookup import lookup_platform
from trusted_identity.services.origins import (
    allow_origin,
    allowed_origins,
    cors_allowed,
    deny_origin,
    normalize_origin,
    origins_by_platform,
)

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("  HTTPS://App.Example.COM/ ", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("https://localhost:80", "https://localhost:80"),
        ("http://127.0.0.1:8251", "http://127.0.0.1:8251"),
        ("http://[0:0:0:0:0:0:0:1]:3000", "http://[::1]:3000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("https://my_host.example", "https://my_host.example"),
        # IPv4 hosts as the URL Standard parses them: the Origin header a browser sends.
        ("http://0x7f.1", "http://127.0.0.1"),
        ("http://127.1:8000", "http://127.0.0.1:8000"),
        ("http://2130706433", "http://127.0.0.1"),
        ("http://0177.0.0.01", "http://127.0.0.1"),
        ("http://1.2.3", "http://1.2.0.3"),
        ("http://0x7F.0.0.1.", "http://127.0.0.1"),
        ("http://10.0.0.0x", "http://10.0.0.0"),
    ],
)
def test_origins_are_normalised_as_browsers_send_them(given, normalised):
    assert normalize_origin(given) == normalised


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "empty"),
        ("*", "wildcards"),
        ("https://*.example.com", "wildcards"),
        ("null", "null"),
        ("app.example.com", "no scheme"),
        ("ftp://app.example.com", "http or https"),
        ("chrome-extension://abcdef", "http or https"),
        ("https://app.example.com/path", "no path"),
        ("https://app.example.com/?q=1", "no path"),
        ("https://app.example.com#top", "no path"),
        ("https://app.example.com?", "no path"),
        ("https://user:pw@app.example.com", "no user name"),
        ("https://user@app.example.com", "no user name"),
        ("https://app.example.com:99999", "port"),
        ("https://app.example.com:0", "port"),
        ("https://app.example.com:abc", "port"),
        ("https://app.example.com:", "port is empty"),
        ("https://", "no host"),
        ("https://app .example.com", "spaces"),
        ("https://app.exa\nmple.com", "spaces"),
        ("https://app\\example.com", "control"),
        ("https://exa$mple.com", "not a valid host"),
        ("https://-bad.example.com", "not a valid host"),
        ("https://app..example.com", "not a valid host"),
        ("https://example.com.", "not a valid host"),
        ("https://1.2.3.4.5", "IPv4"),
        ("https://256.0.0.1", "IPv4"),
        ("https://1.2.3.256", "IPv4"),
        ("https://4294967296", "IPv4"),
        ("https://09.1.1.1", "IPv4"),
        ("https://example.123", "IPv4"),
        ("https://[::1%eth0]", "zone"),
        ("https://[fe80::zz]", "malformed"),
        ("https://" + "a" * 300 + ".com", "longer than"),
    ],
)
def test_malformed_origins_are_refused_with_the_reason(given, reason):
    with pytest.raises(InvalidRequest, match=reason):
        normalize_origin(given)


def test_allow_and_deny_audit_bump_the_generation_and_reach_the_snapshot(
    web, cli_actor, django_capture_on_commit_callbacks
):
    before = read_generation()
    with django_capture_on_commit_callbacks(execute=True):
        origin, added = allow_origin(web, "HTTPS://App.Example.com:443", cli_actor)
    assert (origin, added) == ("https://app.example.com", True)
    assert read_generation() == before + 1
    assert lookup_platform(web.api_key).origins == {"https://app.example.com"}
    assert allowed_origins(web) == ["https://app.example.com"]
    entry = AuditEvent.objects.filter(platform=web).latest("pk")
    assert entry.message == "Allowed the origin https://app.example.com (CORS)."
    assert (entry.actor, entry.actor_name) == (None, "trusted-identity-cli")

    # Allowing it again changes nothing: no audit entry, no generation bump.
    entries = AuditEvent.objects.count()
    assert allow_origin(web, "https://app.example.com/", cli_actor) == (
        "https://app.example.com",
        False,
    )
    assert AuditEvent.objects.count() == entries
    assert read_generation() == before + 1

    with django_capture_on_commit_callbacks(execute=True):
        assert deny_origin(web, "https://APP.example.com", cli_actor) == ("https://app.example.com")
    assert read_generation() == before + 2
    assert lookup_platform(web.api_key).origins == frozenset()
    entry = AuditEvent.objects.filter(platform=web).latest("pk")
    assert entry.message == "Removed the allowed origin https://app.example.com (CORS)."


def test_denying_an_origin_not_listed_says_what_is_listed(web, cli_actor):
    allow_origin(web, "https://a.example", cli_actor)
    with pytest.raises(
        InvalidRequest, match=r"not an allowed origin .*allowed: https://a\.example"
    ):
        deny_origin(web, "https://b.example", cli_actor)
    assert allowed_origins(web) == ["https://a.example"]


@pytest.mark.parametrize("kind", ["ios", "android", "tvos", "androidtv", "roku"])
def test_other_kinds_have_no_list(space, cli_actor, kind):
    platform = PlatformFactory(space=space, kind=kind)
    with pytest.raises(InvalidRequest, match="only web platforms"):
        allow_origin(platform, "https://app.example.com", cli_actor)
    assert not AllowedOrigin.objects.exists()


def test_a_platform_lists_at_most_max_origins(web, cli_actor, monkeypatch):
    monkeypatch.setattr(origins, "MAX_ORIGINS", 2)
    allow_origin(web, "https://a.example", cli_actor)
    allow_origin(web, "https://b.example", cli_actor)
    with pytest.raises(InvalidRequest, match="already allows 2 origins"):
        allow_origin(web, "https://c.example", cli_actor)


@pytest.mark.parametrize(
    ("role", "allowed"), [(Role.OWNER, True), (Role.ADMIN, True), (Role.VIEWER, False)]
)
def test_changing_the_list_needs_the_enforce_permission(space, web, role, allowed):
    user = UserFactory()
    MembershipFactory(space=space, user=user, role=role)
    actor = access.Actor.admin(user)
    if allowed:
        allow_origin(web, "https://a.example", actor)
        deny_origin(web, "https://a.example", actor)
    else:
        with pytest.raises(PermissionDenied):
            allow_origin(web, "https://a.example", actor)
        allow_origin(web, "https://a.example", access.get_cli_actor())
        with pytest.raises(PermissionDenied):
            deny_origin(web, "https://a.example", actor)
        assert allowed_origins(web) == ["https://a.example"]


def test_an_admin_of_another_space_may_not_change_the_list(web):
    stranger = UserFactory()
    MembershipFactory(space=SpaceFactory(), user=stranger, role=Role.OWNER)
    with pytest.raises(PermissionDenied):
        allow_origin(web, "https://a.example", access.Actor.admin(stranger))


def test_cors_allowed_per_platform_and_for_any_platform(space, web, cli_actor, commit):
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="web")
    with commit():
        allow_origin(web, "https://a.example", cli_actor)
        allow_origin(other, "https://b.example", cli_actor)
    mine = lookup_platform(web.api_key)
    assert cors_allowed("https://a.example", mine)
    assert not cors_allowed("https://b.example", mine)  # another platform's origin
    assert not cors_allowed("https://A.example", mine)  # compared as browsers send it
    assert not cors_allowed(None, mine)
    assert not cors_allowed("", None)
    # Without a platform (a preflight): any web platform's list.
    assert cors_allowed("https://a.example", None)
    assert cors_allowed("https://b.example", None)
    assert not cors_allowed("https://c.example", None)
    assert not cors_allowed("null", None)


def test_the_origin_index_follows_changes_and_costs_no_query_when_warm(
    web, cli_actor, commit, django_assert_num_queries
):
    assert not cors_allowed("https://a.example")
    with commit():
        allow_origin(web, "https://a.example", cli_actor)
    assert cors_allowed("https://a.example")  # a new generation: read again
    with django_assert_num_queries(0):
        for _ in range(5):
            assert cors_allowed("https://a.example")
            assert not cors_allowed("https://z.example")
    with commit():
        deny_origin(web, "https://a.example", cli_actor)
    assert not cors_allowed("https://a.example")


def test_a_deleted_platform_takes_its_origins_with_it(web, cli_actor, commit):
    with commit():
        allow_origin(web, "https://a.example", cli_actor)
    assert cors_allowed("https://a.example")
    with commit():
        web.delete()
    assert not AllowedOrigin.objects.exists()
    assert not cors_allowed("https://a.example")


def test_the_warm_lookup_of_a_web_platform_makes_no_query(
    web, cli_actor, commit, django_assert_num_queries
):
    with commit():
        allow_origin(web, "https://a.example", cli_actor)
    assert lookup_platform(web.api_key).origins == {"https://a.example"}
    with django_assert_num_queries(0):
        assert lookup_platform(web.api_key).origins == {"https://a.example"}


def test_origins_by_platform_reads_many_lists_in_one_query(
    space, web, cli_actor, django_assert_num_queries
):
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="web")
    allow_origin(web, "https://b.example", cli_actor)
    allow_origin(web, "https://a.example", cli_actor)
    with django_assert_num_queries(1):
        found = origins_by_platform([web.pk, other.pk])
    assert found == {web.pk: ["https://a.example", "https://b.example"], other.pk: []}
