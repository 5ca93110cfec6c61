"""A change that alters verification is honoured everywhere within a second, races included.

CONTRACT section 2. The lookups here run on real commits (transactional tests) and
real threads; the multi-process side (runserver, gunicorn workers with and without
Redis, the CLI in another process) is in ``test_multiprocess.py``.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import caches

from tests.support import read_generation, verify_user_id
from trusted_identity.conf import app_settings
from trusted_identity.runtime import close_thread_connections
from trusted_identity.services import access, enforcement, lookup, platform_secrets
from trusted_identity.services.lookup import lookup_platform
from trusted_identity.services.rekey import rekey
from trusted_identity.signing import sign

from . import isolation
from .factories import PlatformFactory, SpaceFactory

USER = "user-1"


@pytest.fixture(params=["locmem", "redis"])
def shared_cache(request, settings):
    if request.param == "redis":
        # This test's own key prefix in the tests' Redis db (tests/isolation.py).
        settings.CACHES = {"default": request.getfixturevalue("redis_namespace").cache_settings()}
    isolation.clear_cache(caches["default"])
    yield caches["default"]
    isolation.clear_cache(caches["default"])


def _verifies(api_key: str, secret: str) -> bool:
    return verify_user_id(lookup_platform(api_key), USER, sign(secret, USER))


@pytest.mark.django_db(transaction=True)
def test_a_lookup_racing_a_revocation_leaves_no_old_snapshot_in_any_cache(
    shared_cache, monkeypatch
):
    """Finding 3: a lookup reads the database before a grace-0 rotation commits and
    writes the caches after it. Whatever it stored must never be served afterwards."""
    platform = PlatformFactory(space=SpaceFactory(slug="race"), kind="web")
    actor = access.get_cli_actor()
    revoked = platform_secrets.reveal_secret(platform, actor)
    read_done, release = threading.Event(), threading.Event()
    real_load = lookup._load_snapshot

    def slow_load(api_key):
        snapshot = real_load(api_key)  # the database as it was before the revocation
        read_done.set()
        release.wait(10)  # the revocation commits meanwhile
        return snapshot

    monkeypatch.setattr(lookup, "_load_snapshot", slow_load)
    raced = []

    def racing_lookup():
        try:
            raced.append(lookup_platform(platform.api_key))
        finally:
            close_thread_connections()

    thread = threading.Thread(target=racing_lookup)
    thread.start()
    assert read_done.wait(10)
    current = platform_secrets.rotate_secret(platform, actor, grace=timedelta(0))
    release.set()
    thread.join(10)
    monkeypatch.setattr(lookup, "_load_snapshot", real_load)
    # The racing request began before the change: it may answer with what it read.
    assert verify_user_id(raced[0], USER, sign(revoked, USER))

    # Another process that had not yet heard of the change reads the shared cache with
    # the generation it knew: what the racing lookup stored there can only be found
    # under that old generation, which every process leaves within the interval.
    time.sleep(float(app_settings.LOOKUP_CHECK_INTERVAL) + 0.1)
    for _ in range(20):
        assert not _verifies(platform.api_key, revoked)
        assert _verifies(platform.api_key, current)
    fresh = shared_cache.get(lookup.cache_key(platform.api_key, read_generation()))
    assert fresh is None or len(fresh.secrets) == 1


@pytest.mark.django_db(transaction=True)
def test_a_process_that_missed_the_commit_catches_up_within_the_interval(shared_cache):
    """A change committed elsewhere (no on-commit hook ran in this process) is seen at
    the next read of the generation, within ``LOOKUP_CHECK_INTERVAL``."""
    platform = PlatformFactory(space=SpaceFactory(slug="elsewhere"), kind="ios")
    actor = access.get_cli_actor()
    old = platform_secrets.reveal_secret(platform, actor)
    assert _verifies(platform.api_key, old)  # cached in both layers
    # The change as another process makes it: this process's hook is not told.
    monkeypatched_expire = lookup._expire_generation
    lookup._expire_generation = lambda: None
    try:
        new = platform_secrets.rotate_secret(platform, actor, grace=timedelta(0))
        committed = time.monotonic()
        while _verifies(platform.api_key, old):
            assert time.monotonic() - committed < 1.0, "not honoured within a second"
            time.sleep(0.02)
    finally:
        lookup._expire_generation = monkeypatched_expire
    assert _verifies(platform.api_key, new)


@pytest.mark.django_db(transaction=True)
def test_every_kind_of_change_moves_the_generation(shared_cache):
    space = SpaceFactory(slug="moves")
    platform = PlatformFactory(space=space, kind="roku")
    actor = access.get_cli_actor()
    seen = [read_generation()]

    def moved():
        seen.append(read_generation())
        return seen[-1] > seen[-2]

    platform_secrets.rotate_secret(platform, actor)
    assert moved()
    platform_secrets.revoke_previous(platform, actor)
    assert moved()
    enforcement.set_enforcement(platform, True, actor, force=True, reason="test")
    assert moved()
    rekey()  # nothing to re-encrypt: the generation stays
    assert not moved()
    platform.delete()
    assert moved()
