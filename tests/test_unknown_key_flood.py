"""A flood of made-up API keys from one client (issue 19, "Rate limits that hold"), on
both session paths: answered 401 up to ``UNKNOWN_KEY_RATE_LIMIT``, then 429 without a
database query; and a real key's counter that no amount of junk pushes out of Django's
local-memory cache (300 entries, a third culled when full).

The figures (``requests answered before the first 429``, ``queries per junk request``)
are printed at the end of the run, as tests/hardening.py's are, and quoted in
docs/performance.md and SECURITY.md.
"""

from __future__ import annotations

import secrets

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_identity.conf import SETTINGS

from . import hardening
from .support import wait_out_window_edge
from .test_http import assert_error, assert_json, set_app_settings, start

pytestmark = [pytest.mark.both_paths, pytest.mark.django_db]

FLOOD = 1500


def junk_key() -> str:
    return "tik_" + secrets.token_urlsafe(24)  # a real key's shape, no platform's


def test_random_keys_from_one_address_hit_429_and_cost_no_query(
    client, session_path, platform, settings
):
    default = SETTINGS["UNKNOWN_KEY_RATE_LIMIT"].default  # "60/m"
    limit = int(default.split("/")[0])
    # The default's count over an hour's window: on a loaded machine the burst can take
    # longer than a minute's window has left, and would straddle two windows. The
    # generation read once an hour: every query left is a lookup's.
    rate = f"{limit}/h"
    set_app_settings(settings, UNKNOWN_KEY_RATE_LIMIT=rate, LOOKUP_CHECK_INTERVAL=3600)
    wait_out_window_edge(3600, margin=120)
    answered, queries = [], []
    for _ in range(FLOOD):
        with CaptureQueriesContext(connection) as captured:
            response = start(client, junk_key(), {})
        answered.append(response.status_code)
        queries.append(len(captured))
        if response.status_code == 429:
            assert response["Retry-After"].isdigit()
            assert assert_json(response) == {
                "error": {"code": "rate_limited", "message": "too many requests; retry later"}
            }
    first_429 = answered.index(429)
    assert answered == [401] * limit + [429] * (FLOOD - limit)
    assert sum(queries[first_429:]) == 0, "a refused start read the database"
    assert max(queries[:first_429]) <= 2  # the generation, then the one lookup
    figures = hardening.FIGURES
    figures[f"junk_keys_answered_before_429_{session_path}"] = first_429
    figures[f"junk_key_queries_before_limit_{session_path}"] = sum(queries[:first_429])
    figures[f"junk_key_queries_after_limit_{session_path}"] = sum(queries[first_429:])
    # The same address's platform, already looked up, still starts.
    assert start(client, platform.api_key, {}, REMOTE_ADDR="10.0.0.2").status_code == 201


def test_junk_keys_never_evict_a_real_keys_counter_from_locmem(client, platform, settings):
    """2,000 made-up keys interleaved with a real key's starts, with Django's default
    local-memory cache: the real key is still refused past its limit, because junk
    makes one counter per address, never one per key."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            # Its own store (locmem's outlive a test); Django's defaults: MAX_ENTRIES
            # 300, CULL_FREQUENCY 3.
            "LOCATION": f"ti-flood-{secrets.token_hex(8)}",
        }
    }
    set_app_settings(settings, RATE_LIMIT="50/h", UNKNOWN_KEY_RATE_LIMIT="100000/h")
    wait_out_window_edge(3600)
    real = []
    for n in range(2000):
        assert_error(start(client, junk_key(), {}), 401, "invalid_api_key")
        if n % 20 == 0:
            real.append(start(client, platform.api_key, {}).status_code)
    assert real == [201] * 50 + [429] * 50
    # The platform's lookup, its counter and the address's unknown-key counter; no more.
    cache = caches["default"]
    assert len(cache._cache) <= 5
    cache.clear()


def test_junk_from_an_address_cant_keep_its_real_key_out_after_a_change(client, platform, settings):
    """A neighbour behind the same address (carrier NAT, an office) floods junk keys past
    the limit; then a rotation empties every cache. The real key, once found by this
    process, still reaches its platform: only keys never found count as unknown."""
    from trusted_identity.services import access, platform_secrets

    set_app_settings(settings, UNKNOWN_KEY_RATE_LIMIT="5/m")
    wait_out_window_edge(60)
    assert start(client, platform.api_key, {}).status_code == 201  # found once
    answers = [start(client, junk_key(), {}).status_code for _ in range(10)]
    assert answers[-1] == 429  # the address is past the unknown-key limit
    # A new generation: neither the near nor the shared cache has the platform now.
    platform_secrets.rotate_secret(platform, access.get_cli_actor())
    assert start(client, platform.api_key, {}).status_code == 201
    assert start(client, junk_key(), {}).status_code == 429  # junk still refused
