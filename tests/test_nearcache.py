"""The per-process layer in front of Redis: used only while subscribed, dropped on publish."""

import socket
import time
from datetime import timedelta

import pytest
import redis
from django.core.cache import caches

from trusted_identity import services
from trusted_identity.nearcache import near_cache
from trusted_identity.services.lookup import cache_key

from .factories import PlatformFactory


def _redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


pytestmark = pytest.mark.skipif(not _redis_up(), reason="Redis is not running on 127.0.0.1:6379")

REDIS_DB = 12


@pytest.fixture
def redis_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "project.cache.ReusingRedisCache",
            "LOCATION": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "KEY_PREFIX": "near-cache-test",
        }
    }
    caches["default"].clear()
    yield caches["default"]
    caches["default"].clear()
    near_cache.reset()


def _wait_until_subscribed(platform, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        services.lookup_platform(platform.api_key)  # starts the listener
        if near_cache._healthy:
            return
        time.sleep(0.05)
    raise AssertionError("the invalidation listener never subscribed")


def test_a_warm_lookup_is_served_from_process_memory(redis_cache, platform):
    _wait_until_subscribed(platform)
    first = services.lookup_platform(platform.api_key)
    redis_cache.delete(cache_key(platform.api_key))  # behind the layer's back
    assert services.lookup_platform(platform.api_key) is first


def test_an_invalidation_published_by_another_process_drops_the_entry(redis_cache, platform):
    _wait_until_subscribed(platform)
    services.lookup_platform(platform.api_key)
    key = cache_key(platform.api_key)
    redis_cache.delete(key)
    # Another process publishes on the same channel with its own connection.
    other = redis.Redis(db=REDIS_DB)
    other.publish(redis_cache.make_key("trusted_identity:invalidate"), key)
    deadline = time.monotonic() + 2
    while near_cache._entries.get(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert key not in near_cache._entries


def test_rotation_is_seen_at_once_through_the_layer(
    redis_cache, platform, cli_actor, django_capture_on_commit_callbacks
):
    _wait_until_subscribed(platform)
    old = services.reveal_secret(platform, cli_actor)
    assert services.verify_user_id(services.lookup_platform(platform.api_key), "u", _sig(old))
    with django_capture_on_commit_callbacks(execute=True):
        new = services.rotate_secret(platform, cli_actor, grace=timedelta(0))
    snapshot = services.lookup_platform(platform.api_key)
    assert services.verify_user_id(snapshot, "u", _sig(new))
    assert not services.verify_user_id(snapshot, "u", _sig(old))


def test_a_read_racing_an_invalidation_is_not_kept(redis_cache, platform):
    _wait_until_subscribed(platform)
    key = cache_key(platform.api_key)
    near_cache.drop([key])
    generation = near_cache.generation()
    stale = object()
    near_cache.drop(["another-key"])  # an invalidation arrives during the read
    near_cache.put(key, stale, generation)
    assert near_cache.get(key) is None


def test_without_a_subscription_the_layer_is_off(db, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "project.cache.ReusingRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"socket_connect_timeout": 0.1, "socket_timeout": 0.1},
        }
    }
    platform = PlatformFactory(kind="roku")
    for _ in range(3):
        snapshot = services.lookup_platform(platform.api_key)  # from the database
        assert snapshot.platform_id == platform.pk
    assert not near_cache._healthy
    assert near_cache._entries == {}
    near_cache.reset()


def _sig(secret):
    from trusted_identity.signing import sign

    return sign(secret, "u")
