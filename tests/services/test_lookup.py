"""The platform lookup: its caches hold ciphertexts only and forget deleted platforms.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import pickle

import pytest
from django.core.cache import caches

from trusted_identity.conf import app_settings
from trusted_identity.exceptions import (
    InvalidApiKey,
)
from trusted_identity.services import lookup
from trusted_identity.services.lookup import cache_key, current_generation

from .helpers import (
    _current_rows,
    _secret,
    _verifies,
)


def test_the_platform_cache_holds_ciphertexts_only(platform, cli_actor):
    secret = _secret(platform, cli_actor)
    assert _verifies(platform, secret)
    cached = caches[app_settings.CACHE_ALIAS].get(cache_key(platform.api_key, current_generation()))
    assert cached is not None
    image = pickle.dumps(cached)
    assert _current_rows(platform).get().ciphertext.encode() in image
    assert secret.encode() not in image


@pytest.mark.parametrize(
    "api_key",
    ["", "tik_unknown", None, "\x00", "tik_" + "a" * 200, 42],
    ids=["empty", "unknown", "none", "nul", "too-long", "not-a-string"],
)
def test_lookup_platform_refuses_unknown_keys(platform, api_key):
    with pytest.raises(InvalidApiKey):
        lookup.lookup_platform(api_key)
    assert lookup.lookup_platform(platform.api_key).platform_id == platform.pk


def test_api_keys_are_matched_exactly(platform):
    for near in (platform.api_key.upper(), platform.api_key + " ", platform.api_key[:-1]):
        with pytest.raises(InvalidApiKey):
            lookup.lookup_platform(near)


def test_deleting_a_platform_stops_lookup_at_once(platform, commit):
    snapshot = lookup.lookup_platform(platform.api_key)  # warm
    assert lookup.lookup_platform(platform.api_key) == snapshot
    with commit():
        platform.delete()
    with pytest.raises(InvalidApiKey):
        lookup.lookup_platform(platform.api_key)


def test_deleting_a_space_stops_lookup_at_once(space, platform, commit):
    lookup.lookup_platform(platform.api_key)  # warm
    with commit():
        space.delete()
    with pytest.raises(InvalidApiKey):
        lookup.lookup_platform(platform.api_key)


def test_whether_a_snapshot_takes_public_keys_is_derived_never_stored(platform):
    """Read on every start with a token, so made once: from the fields when the
    snapshot is made or replaced, and again when unpickled (an image from a version
    that did not store it, too); never part of the shared cache's image."""
    from dataclasses import replace

    from trusted_identity.services.lookup import JwksSnapshot, PublicKeySnapshot

    snapshot = lookup.lookup_platform(platform.api_key)
    assert snapshot.takes_public_keys is False
    key = PublicKeySnapshot(1, "k1", b"spki", None)
    assert replace(snapshot, public_keys=(key,)).takes_public_keys is True
    assert replace(snapshot, key_source="both").takes_public_keys is True
    assert replace(snapshot, jwks=JwksSnapshot((), None)).takes_public_keys is True
    assert replace(snapshot, key_source="public-key").takes_public_keys is True
    taking = replace(snapshot, key_source="both")
    assert "takes_public_keys" not in taking.__getstate__()
    assert pickle.loads(pickle.dumps(taking)).takes_public_keys is True
    assert pickle.loads(pickle.dumps(snapshot)).takes_public_keys is False
