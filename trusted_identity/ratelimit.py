"""Fixed-window rate limits through Django's cache (shared across processes with Redis)."""

from __future__ import annotations

import logging
import socket
import time

from django.core.cache import caches
from django.http import HttpRequest

from . import runtime
from .conf import app_settings
from .rates import Rate, RateError
from .rates import parse_rate as _parse_rate

logger = logging.getLogger("trusted_identity")


def client_address(request: HttpRequest) -> str:
    """The client's address, as the example project's Axes keys on it; the rate limits
    count it as :func:`limit_key` groups it.

    Without ``CLIENT_IP_HEADER``, ``REMOTE_ADDR``. With it, a list of addresses that
    each trusted proxy appends to (``X-Forwarded-For`` with nginx's
    ``$proxy_add_x_forwarded_for``, and most load balancers): the client is the
    address ``PROXY_COUNT`` hops from the right. Everything to the left of it was
    sent by the client and is never used. A header with fewer entries than
    ``PROXY_COUNT`` did not pass through every trusted proxy, so no entry of it can be
    trusted: ``REMOTE_ADDR`` (the nearest proxy) is used then, which can only make
    the limit stricter, never let a client pick its own key.
    """
    remote = request.META.get("REMOTE_ADDR", "")[:64]
    header = app_settings.CLIENT_IP_HEADER
    value = request.META.get(header) if header else None
    if not value:
        return remote
    count = app_settings.PROXY_COUNT
    hops = value.split(",")
    if not isinstance(count, int) or count < 1 or len(hops) < count:
        return remote
    return hops[-count].strip()[:64] or remote


#: The first 12 bytes of an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``).
IPV4_MAPPED = bytes(10) + b"\xff\xff"


def limit_key(address: str) -> str:
    """The client a rate limit counts ``address`` as: whom one counter belongs to.

    An IPv4 address is itself. An IPv6 address is its network of
    ``IPV6_RATE_LIMIT_PREFIX`` bits (``2001:db8:1:2::/64``): one subscriber is routed
    a whole /64 (often a /56 or /48) and can send from any of its 2**64 addresses,
    so counting each alone would give it as many budgets. An IPv4-mapped IPv6 address
    (``::ffff:192.0.2.1``, from a dual-stack socket) is the IPv4 address it maps.
    Anything else (a proxy's header that holds no address) is itself, truncated, so
    the number of counters stays bounded by what the client can send.
    """
    if ":" not in address:
        return address[:64]  # IPv4, the common case, without parsing it
    try:  # the C parser: the ipaddress module's takes some 20 us per address
        packed = socket.inet_pton(socket.AF_INET6, address.partition("%")[0])  # no zone
    except (OSError, ValueError):
        return address[:64]
    if packed[:12] == IPV4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    prefix = app_settings.IPV6_RATE_LIMIT_PREFIX
    shift = 128 - prefix
    network = (int.from_bytes(packed, "big") >> shift << shift).to_bytes(16, "big")
    return f"{socket.inet_ntop(socket.AF_INET6, network)}/{prefix}"


#: A rate that does not parse (the settings' check reports it at start).
RateLimitError = RateError


def parse_rate(text: str | None) -> Rate | None:
    """``"600/m"`` as a Rate; ``"off"`` (or empty) as None. RateLimitError if invalid.

    The settings' own parser (``rates``), remembered per text by the runtime: session
    start asks on every request.
    """
    return runtime.current().rates.get(text, _parse_rate, text)


def hit(scope: str, identity: str, rate_text: str | None) -> int | None:
    """Count one request; the seconds to wait if it is over the limit, else None.

    A cache that is down lets the request through (logged): a rate limit must
    never take the service down with it.
    """
    rate = parse_rate(rate_text)
    if rate is None:
        return None
    now = time.time()
    window = int(now // rate.period)
    key = f"trusted_identity:rl:{scope}:{window}:{identity}"
    cache = caches[app_settings.CACHE_ALIAS]
    try:
        if cache.add(key, 1, rate.period + 1):
            return None
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        return None
    except Exception:
        logger.warning("Trusted Identity rate limit skipped: cache unavailable")
        return None
    if count > rate.limit:
        return max(1, int((window + 1) * rate.period - now + 0.999))
    return None
