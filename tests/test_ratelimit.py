"""Rate limits of session start (429 with Retry-After) and the client address behind
proxies (CLIENT_IP_HEADER, PROXY_COUNT), on both paths.
"""

import pytest

from trusted_identity.services import figures

from .factories import PlatformFactory
from .support import wait_out_window_edge
from .test_http import (  # noqa: F401
    SESSIONS,
    assert_error,
    assert_json,
    set_app_settings,
    start,
)

pytestmark = pytest.mark.both_paths

# ------------------------------------------------------------------- rate limits


def test_rate_limit(client, platform, space, settings):
    set_app_settings(settings, RATE_LIMIT="3/m")
    wait_out_window_edge(60)
    for _ in range(3):
        assert start(client, platform.api_key, {}).status_code == 201
    response = start(client, platform.api_key, {})
    assert_error(response, 429, "rate_limited")
    retry_after = response["Retry-After"]
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= 60
    assert figures.readiness(platform).visitor == 3

    # Another API key from the same address has its own budget.
    web = PlatformFactory(space=space, kind="web")
    assert start(client, web.api_key, {}).status_code == 201
    # Another address with the same key too.
    assert start(client, platform.api_key, {}, REMOTE_ADDR="10.0.0.9").status_code == 201


def test_unknown_keys_are_limited_per_address_whatever_the_key(client, platform, settings):
    """Each guess a new key, malformed or not: one budget per address, not per key."""
    set_app_settings(settings, RATE_LIMIT="100/h", UNKNOWN_KEY_RATE_LIMIT="4/h")
    wait_out_window_edge(3600)
    # Counted once (no cache knew the key before the database said it), then cached.
    assert start(client, platform.api_key, {}).status_code == 201
    for guess in ("tik_guess1", "tik_guess2", "not a key\x00"):
        assert_error(start(client, guess, {}), 401, "invalid_api_key")
    for guess in ("tik_guess3", "tik_guess1", "", None):
        response = start(client, guess, {})
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response["Retry-After"]) <= 3600
    # Another address has its own budget; a platform the caches know is not refused.
    assert_error(start(client, "tik_guess4", {}, REMOTE_ADDR="10.0.0.9"), 401, "invalid_api_key")
    assert start(client, platform.api_key, {}).status_code == 201
    # A platform no cache knows yet counts as unknown until it is read: refused here.
    PlatformFactory(space=platform.space, kind="web")
    cold = PlatformFactory(space=platform.space, kind="android")
    assert_error(start(client, cold.api_key, {}), 429, "rate_limited")
    assert start(client, cold.api_key, {}, REMOTE_ADDR="10.0.0.9").status_code == 201


def test_unknown_key_rate_limit_off(client, db, settings):
    set_app_settings(settings, UNKNOWN_KEY_RATE_LIMIT="off")
    for n in range(30):
        assert_error(start(client, f"tik_guess{n}", {}), 401, "invalid_api_key")


def test_a_key_found_unknown_is_remembered_until_the_generation_changes(
    client, space, settings, monkeypatch, django_assert_num_queries
):
    """The same junk again costs no query; a platform added with that key works at once."""
    from trusted_identity.services import spaces

    set_app_settings(settings, LOOKUP_CHECK_INTERVAL=3600)
    assert_error(start(client, "tik_soon_real", {}), 401, "invalid_api_key")
    with django_assert_num_queries(0):
        assert_error(start(client, "tik_soon_real", {}), 401, "invalid_api_key")
    monkeypatch.setattr(spaces, "new_api_key", lambda: "tik_soon_real")
    spaces.add_platform(space, "web")  # bumps the verification generation
    assert start(client, "tik_soon_real", {}).status_code == 201


def test_the_unknown_keys_are_forgotten_after_their_ttl_and_bounded(monkeypatch):
    from trusted_identity import nearcache

    unknown = nearcache.UnknownKeys(maxsize=3)
    unknown.add("tik_a", 7)
    assert unknown.known("tik_a", 7)
    assert not unknown.known("tik_a", 8)  # another generation: dropped
    assert not unknown.known("tik_a", 7)
    for key in ("tik_1", "tik_2", "tik_3", "tik_4"):
        unknown.add(key, 7)
    assert len(unknown) <= 3
    assert unknown.known("tik_4", 7)
    monkeypatch.setattr(nearcache, "UNKNOWN_KEY_TTL", -1.0)
    unknown.add("tik_b", 7)
    assert not unknown.known("tik_b", 7)
    unknown.clear()
    assert len(unknown) == 0


# ------------------------------------------------------------------ IPv6 prefixes


@pytest.mark.parametrize(
    ("prefix", "address", "expected"),
    [
        (64, "203.0.113.7", "203.0.113.7"),
        (64, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        (64, "2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        (64, "fe80::1%eth0", "fe80::/64"),  # the zone is no part of the key
        (64, "::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped: the IPv4 client
        (56, "2001:db8:1:2ff::1", "2001:db8:1:200::/56"),
        (48, "2001:db8:1:2::1", "2001:db8:1::/48"),
        (128, "2001:db8::1", "2001:db8::1/128"),
        (1, "2001:db8::1", "::/1"),
        (64, "not an address", "not an address"),
        (64, "[2001:db8::1]:443", "[2001:db8::1]:443"),  # garbage is itself
        (64, "x:" * 60, ("x:" * 60)[:64]),
        (64, "9" * 100, "9" * 64),
        (64, "", ""),
    ],
)
def test_limit_key_groups_ipv6_by_prefix(settings, prefix, address, expected):
    from trusted_identity.ratelimit import limit_key

    set_app_settings(settings, IPV6_RATE_LIMIT_PREFIX=prefix)
    assert limit_key(address) == expected


def test_an_ipv6_prefix_shares_one_limit(client, platform, settings):
    """1,500 starts from 1,500 addresses of one /64: the limit holds; another /64 has its own."""
    import random

    set_app_settings(settings, RATE_LIMIT="100/h")
    wait_out_window_edge(3600)

    def in_the_prefix() -> str:
        return "2001:db8:1:2:" + ":".join(f"{random.getrandbits(16):x}" for _ in range(4))

    statuses = [
        start(client, platform.api_key, {}, REMOTE_ADDR=in_the_prefix()).status_code
        for _ in range(1500)
    ]
    assert statuses == [201] * 100 + [429] * 1400
    assert start(client, platform.api_key, {}, REMOTE_ADDR="2001:db8:1:3::1").status_code == 201


def test_ipv6_prefix_128_counts_each_address(client, platform, settings):
    set_app_settings(settings, RATE_LIMIT="1/h", IPV6_RATE_LIMIT_PREFIX=128)
    wait_out_window_edge(3600)
    assert start(client, platform.api_key, {}, REMOTE_ADDR="2001:db8::1").status_code == 201
    assert start(client, platform.api_key, {}, REMOTE_ADDR="2001:db8::2").status_code == 201
    assert_error(
        start(client, platform.api_key, {}, REMOTE_ADDR="2001:db8::1"), 429, "rate_limited"
    )


def test_an_ipv4_mapped_address_counts_as_its_ipv4(client, platform, settings):
    set_app_settings(settings, RATE_LIMIT="1/h")
    wait_out_window_edge(3600)
    assert start(client, platform.api_key, {}, REMOTE_ADDR="203.0.113.7").status_code == 201
    response = start(client, platform.api_key, {}, REMOTE_ADDR="::ffff:203.0.113.7")
    assert_error(response, 429, "rate_limited")


def test_rate_limit_off(client, platform, settings):
    set_app_settings(settings, RATE_LIMIT="off")
    for _ in range(25):
        assert start(client, platform.api_key, {}).status_code == 201
    assert figures.readiness(platform).visitor == 25


def test_rate_limit_uses_the_client_ip_header_when_configured(client, platform, settings):
    # Two proxies: a load balancer appends the client, then nginx appends the balancer.
    set_app_settings(
        settings, RATE_LIMIT="1/h", CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR", PROXY_COUNT=2
    )
    wait_out_window_edge(3600)
    a = {"HTTP_X_FORWARDED_FOR": "203.0.113.1, 10.0.0.1"}
    b = {"HTTP_X_FORWARDED_FOR": "203.0.113.2, 10.0.0.1"}
    assert start(client, platform.api_key, {}, **a).status_code == 201
    assert start(client, platform.api_key, {}, **b).status_code == 201
    assert_error(start(client, platform.api_key, {}, **a), 429, "rate_limited")


@pytest.mark.parametrize(
    ("proxies", "header", "expected"),
    [
        (1, None, "10.0.0.1"),  # no header: the peer
        (1, "", "10.0.0.1"),
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the client wrote 6.6.6.6
        (1, "6.6.6.6,203.0.113.7 ", "203.0.113.7"),
        (1, "1.1.1.1, 2.2.2.2, 203.0.113.7", "203.0.113.7"),
        (2, "6.6.6.6, 203.0.113.7, 192.0.2.1", "203.0.113.7"),
        (2, "203.0.113.7, 192.0.2.1", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.1"),  # fewer entries than proxies: the peer, never them
        (3, "6.6.6.6, 203.0.113.7", "10.0.0.1"),
        (1, "6.6.6.6, ", "10.0.0.1"),  # an empty entry where the proxy's should be
    ],
)
def test_client_address_counts_trusted_proxies_from_the_right(settings, proxies, header, expected):
    from django.test import RequestFactory

    from trusted_identity.views import client_address

    set_app_settings(settings, CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR", PROXY_COUNT=proxies)
    extra = {} if header is None else {"HTTP_X_FORWARDED_FOR": header}
    request = RequestFactory().post(SESSIONS, REMOTE_ADDR="10.0.0.1", **extra)
    assert client_address(request) == expected


def test_a_bad_proxy_count_never_trusts_the_header(settings):
    """Read with the checks skipped, it is a configuration error (a 503), not a guess."""
    from django.core.exceptions import ImproperlyConfigured
    from django.test import RequestFactory

    from trusted_identity.views import client_address

    set_app_settings(settings, CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR", PROXY_COUNT=0)
    request = RequestFactory().post(
        SESSIONS, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
    )
    with pytest.raises(ImproperlyConfigured, match=r"PROXY_COUNT'\] must be a whole number"):
        client_address(request)


def test_client_address_ignores_the_header_unless_configured(settings):
    from django.test import RequestFactory

    from trusted_identity.views import client_address

    request = RequestFactory().post(
        SESSIONS, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6"
    )
    assert client_address(request) == "10.0.0.1"


def test_a_bad_proxy_count_is_a_check_error(settings):
    from django.core.checks import run_checks

    for bad in (0, -1, "1", 1.5, None):
        set_app_settings(settings, PROXY_COUNT=bad)
        assert "trusted_identity.E005" in [message.id for message in run_checks()], bad
    set_app_settings(settings, PROXY_COUNT=2)
    assert "trusted_identity.E005" not in [message.id for message in run_checks()]
