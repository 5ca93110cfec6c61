"""Spaces and platforms: create, add, find.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import pytest

from trusted_identity.exceptions import (
    AlreadyExists,
    InvalidRequest,
    PlatformNotFound,
    SpaceNotFound,
)
from trusted_identity.models import (
    Platform,
    PlatformKind,
    PlatformSecret,
    Space,
)
from trusted_identity.services import spaces

from ..factories import (
    SpaceFactory,
)
from .helpers import _secret


def test_create_space(db):
    space = spaces.create_space("news", name="The News")
    assert space.pk and space.slug == "news" and space.name == "The News"
    with pytest.raises(AlreadyExists):
        spaces.create_space("news")


@pytest.mark.parametrize("slug", ["", "has space", "sl/ash", "x" * 65, "nul\x00"])
def test_create_space_refuses_bad_slugs(db, slug):
    with pytest.raises(InvalidRequest):
        spaces.create_space(slug)


def test_add_platform_every_kind(space, cli_actor):
    platforms = [spaces.add_platform(space, kind) for kind in PlatformKind.values]
    api_keys = [p.api_key for p in platforms]
    assert len(set(api_keys)) == len(PlatformKind.values) == 6
    assert all(key.startswith("tik_") and len(key) >= 30 for key in api_keys)
    for platform in platforms:
        rows = PlatformSecret.objects.filter(platform=platform)
        assert rows.count() == 1
        assert rows.get().is_current and rows.get().valid_until is None
        assert not platform.enforced
        secret = _secret(platform, cli_actor)
        assert secret.startswith(f"tis_{platform.kind}_")
    secrets = {_secret(p, cli_actor) for p in platforms}
    assert len(secrets) == 6


def test_add_platform_twice_is_already_exists(space, platform):
    with pytest.raises(AlreadyExists):
        spaces.add_platform(space, "ios")
    assert Platform.objects.filter(space=space, kind="ios").count() == 1
    assert PlatformSecret.objects.filter(platform__space=space).count() == 1
    # Another space may have an ios platform of its own.
    assert spaces.add_platform(SpaceFactory(), "ios").kind == "ios"


@pytest.mark.parametrize("kind", ["tv", "IOS", "", "windows"])
def test_add_platform_unknown_kind(space, kind):
    with pytest.raises(PlatformNotFound):
        spaces.add_platform(space, kind)
    assert not Platform.objects.exists()


def test_get_platform_names_what_is_missing(platform):
    assert spaces.get_platform("acme", "ios") == platform
    with pytest.raises(SpaceNotFound):
        spaces.get_platform("nope", "ios")
    with pytest.raises(PlatformNotFound):
        spaces.get_platform("acme", "web")


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("News\nDesk", "U+000A"),
        ("Acme\x1b[31m", "U+001B"),
        ("evil\u202egnp.exe", "U+202E"),
        ("zero\u200bwidth", "U+200B"),
        ("line\u2028sep", "U+2028"),
        ("x" * 5000, "longer than 200 characters (5,000)"),
    ],
)
def test_create_space_refuses_names_that_forge_or_overflow(db, name, said):
    with pytest.raises(InvalidRequest) as refused:
        spaces.create_space("named", name=name)
    assert said in refused.value.message
    assert not Space.objects.filter(slug="named").exists()


def test_create_space_keeps_printable_names_of_any_script(db):
    space = spaces.create_space("intl", name="  Café 東京 — Ωmega  ")
    assert space.name == "Café 東京 — Ωmega"
