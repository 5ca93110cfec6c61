"""Rate limits of session start (429 with Retry-After) and the client address behind
proxies (CLIENT_IP_HEADER, PROXY_COUNT), on both paths.
"""

import pytest

from trusted_identity.services import figures

from .factories import PlatformFactory
from .test_http import (  # noqa: F401
    SESSIONS,
    assert_error,
    assert_json,
    set_app_settings,
    start,
    wait_out_window_edge,
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


def test_rate_limit_also_counts_unknown_keys(client, db, settings):
    set_app_settings(settings, RATE_LIMIT="2/h")
    wait_out_window_edge(3600)
    assert_error(start(client, "tik_guess1", {}), 401, "invalid_api_key")
    assert_error(start(client, "tik_guess1", {}), 401, "invalid_api_key")
    assert_error(start(client, "tik_guess1", {}), 429, "rate_limited")


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
