"""Fixed-window rate limits through Django's cache (shared across processes with Redis)."""

from __future__ import annotations

import logging
import time

from django.core.cache import caches
from django.http import HttpRequest

from . import runtime
from .conf import app_settings
from .rates import Rate, RateError
from .rates import parse_rate as _parse_rate

logger = logging.getLogger("trusted_identity")


def client_address(request: HttpRequest) -> str:
    """The client's address, as rate limits key on it (and the example project's Axes).

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
