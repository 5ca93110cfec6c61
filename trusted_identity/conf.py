"""The app's settings: one ``TRUSTED_IDENTITY`` dict, read lazily, with defaults.

Read on every access (not at import) so ``override_settings`` and pytest-django's
``settings`` fixture work; derived objects such as the key ring are cached and
dropped again by the ``setting_changed`` receiver in ``receivers.py``.

::

    TRUSTED_IDENTITY = {
        "ENCRYPTION_KEYS": [...],          # default: $TRUSTED_IDENTITY_ENCRYPTION_KEYS
        "SIGNING_SPACE": "my-space",       # the space the sign view uses without ?space=
        "SIGNING_SPACES": ["my-space"],    # the only spaces the sign view signs for
        "DEFAULT_GRACE": timedelta(hours=24),
        "READINESS_WINDOW": timedelta(days=7),
        "READINESS_THRESHOLD": 0.99,
        ...
    }
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    # Comma-separated string or list; the first key encrypts, all decrypt.
    # None means: read the TRUSTED_IDENTITY_ENCRYPTION_KEYS environment variable.
    "ENCRYPTION_KEYS": None,
    # Slug of the space the sign view signs for when the request names none.
    "SIGNING_SPACE": None,
    # Slugs of the spaces the sign view signs for at all (a list, or a comma-separated
    # string); any other space answers 404 platform_not_found, as an unknown one does.
    # None means: SIGNING_SPACE alone when it is set, else no space.
    "SIGNING_SPACES": None,
    # Which attribute of request.user is the user id that gets signed.
    "USER_ID_ATTRIBUTE": "pk",
    # How long a rotated-out secret keeps verifying, unless the rotation says otherwise.
    "DEFAULT_GRACE": timedelta(hours=24),
    # Enforcement readiness: the window looked at, and the valid share required.
    "READINESS_WINDOW": timedelta(days=7),
    "READINESS_THRESHOLD": 0.99,
    # Fewer distinct identified users than this in the window: "not enough starts to
    # tell", and turning enforcement on needs the override with a reason.
    "READINESS_MIN_STARTS": 100,
    # Prefix of generated secrets ("tis_ios_..."), so secret scanners can spot leaks.
    "SECRET_PREFIX": "tis_",
    # Prefix of generated public API keys.
    "API_KEY_PREFIX": "tik_",
    # Session-start request limits.
    "MAX_BODY_BYTES": 64 * 1024,
    "MAX_USER_ID_LENGTH": 1024,
    # Rate limits as "<count>/<s|m|h>", or "off". Session starts are limited per
    # client address and API key; the sign view per user.
    # None means: read TRUSTED_IDENTITY_RATE_LIMIT from the environment, else "600/m".
    "RATE_LIMIT": None,
    "SIGN_RATE_LIMIT": "120/m",
    # Header with the client address when behind a trusted proxy, as it appears in
    # request.META (such as "HTTP_X_FORWARDED_FOR"); None means REMOTE_ADDR.
    "CLIENT_IP_HEADER": None,
    # How many trusted proxies append to CLIENT_IP_HEADER: the client is the address
    # that many entries from the right (nginx's $proxy_add_x_forwarded_for appends
    # the address it saw, so one proxy means the rightmost). Entries left of it are
    # the client's own words and never used; a header with fewer entries falls back
    # to REMOTE_ADDR.
    "PROXY_COUNT": 1,
    # The cache alias for rate limits and the platform lookup.
    "CACHE_ALIAS": "default",
    # Seconds a platform lookup may stay in the cache at most.
    "LOOKUP_CACHE_TIMEOUT": 300,
    # Seconds between two reads of the verification generation by a serving process:
    # a rotation, revocation or enforcement change committed anywhere is honoured by
    # every process within this interval (one tiny query per process per interval).
    "LOOKUP_CHECK_INTERVAL": 0.5,
    # Keep looked-up platforms in process memory too (see nearcache.py).
    "LOCAL_LOOKUP_CACHE": True,
    # Seconds a process gathers session-start counts before writing them (as atomic
    # increments); 0 writes each start at once. Figures lag by at most this much.
    "COUNT_FLUSH_INTERVAL": 0.5,
    # How long hourly session-start counts are kept before `prune` folds them into daily
    # rows (at least the readiness window and the 7-day chart: a system check says so),
    # and how long the daily rows are kept before `prune` deletes them.
    "HOURLY_RETENTION": timedelta(days=14),
    "DAILY_RETENTION": timedelta(days=400),
    # Rollout diagnostics (CONTRACT section 8). Distinct X-App-Version / X-Sdk-Version
    # values counted per platform and UTC day; any more that day count as "other".
    "VERSIONS_PER_DAY": 50,
    # The failure log: at most this many invalid, missing or rejected starts written per
    # platform, second and process (the rest are counted, not logged); the newest this
    # many kept per platform; rows older than the retention deleted by `prune`.
    "FAILURE_LOG_PER_SECOND": 2,
    "FAILURE_LOG_MAX_ROWS": 1000,
    "FAILURE_LOG_RETENTION": timedelta(days=7),
    # Alerts (a signal, and an e-mail to the space's owners): rejected starts in one
    # hour of an enforced platform reaching this many (None: never), and a previous
    # secret still verifying starts this long before its grace ends (None: never).
    "ALERT_REJECTIONS_PER_HOUR": 100,
    "ALERT_GRACE_ENDING_WITHIN": timedelta(hours=1),
    # The expiring signature form (HS256 tokens, CONTRACT section 9). How far a token's
    # exp may lie in the past and its iat in the future (clocks drift): a timedelta.
    "TOKEN_LEEWAY": timedelta(seconds=60),
    # The lifetime of the tokens the sign view, the CLI and sign_token_for make, unless
    # asked otherwise; never above the platform's maximum token age.
    "TOKEN_TTL": timedelta(hours=1),
    # The longest `signed` accepted when it has a token's shape (three dot-separated
    # parts); the plain form stays limited to 256 characters. Longer is a 400.
    "MAX_TOKEN_LENGTH": 4096,
    # How long a secret whose grace has ended is kept (encrypted, never accepted) so that
    # a start signed with it is counted as `expired_secret` rather than `no_match`;
    # rotation and `prune` delete it after that. A timedelta (or seconds).
    "EXPIRED_SECRET_RETENTION": timedelta(days=30),
    # The signature tester (admin settings page and `test-signature`): tests per actor,
    # as "<count>/<s|m|h>", or "off".
    "TESTER_RATE_LIMIT": "30/m",
    # Username the CLI writes audit entries as when no --actor is given.
    "CLI_ACTOR_USERNAME": "trusted-identity-cli",
    # Who the sign view signs: a dotted path, or a list, each a DRF authentication
    # class or a callable taking the request and returning a user or None.
    # None means Django's session login (trusted_identity.authentication.session_user).
    "SIGN_AUTHENTICATION": None,
    # Seconds a browser may keep the session endpoint's answer to a CORS preflight.
    "CORS_MAX_AGE": 3600,
    # The lean session path (trusted_identity.wsgi.LeanSessions) turns itself off when
    # the site runs a middleware it does not know; list here, as dotted paths, those
    # that leave session start alone (it then skips them, as it skips the others).
    "LEAN_PATH_SKIPS_MIDDLEWARE": (),
}


class AppSettings:
    """Attribute access to ``settings.TRUSTED_IDENTITY`` with defaults.

    Values are read on first use, not at import, and remembered: session start
    reads several per request. ``reload()`` forgets them; the ``setting_changed``
    receiver calls it, so ``override_settings`` and the ``settings`` fixture work.
    """

    def __init__(self) -> None:
        self._resolved: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown trusted-identity setting {name!r}")
        try:
            return self._resolved[name]
        except KeyError:
            pass
        user_settings = getattr(django_settings, "TRUSTED_IDENTITY", None)
        if not isinstance(user_settings, dict):
            user_settings = {}  # None, or a mistake the check trusted_identity.E006 names
        value = user_settings.get(name, DEFAULTS[name])
        if name == "ENCRYPTION_KEYS" and value is None:
            value = os.environ.get("TRUSTED_IDENTITY_ENCRYPTION_KEYS", "")
        if name == "RATE_LIMIT" and value is None:
            value = os.environ.get("TRUSTED_IDENTITY_RATE_LIMIT", "") or "600/m"
        if name in ("TOKEN_LEEWAY", "TOKEN_TTL", "FAILURE_LOG_RETENTION") or (
            name == "ALERT_GRACE_ENDING_WITHIN" and value is not None
        ):
            value = _duration(name, value)
        if name == "EXPIRED_SECRET_RETENTION":
            value = _duration(name, value)
        if name == "SIGNING_SPACES":
            if value is None:
                value = [user_settings.get("SIGNING_SPACE", DEFAULTS["SIGNING_SPACE"])]
            value = _slugs(value)
        self._resolved[name] = value
        # An instance attribute from now on: the next reads skip __getattr__ (the hot
        # path reads several settings per request).
        self.__dict__[name] = value
        return value

    def reload(self) -> None:
        for name in list(self._resolved):
            self.__dict__.pop(name, None)
        self._resolved = {}

    def encryption_keys(self) -> list[str]:
        """The configured keys as a list of stripped, non-empty strings."""
        value = self.ENCRYPTION_KEYS
        if isinstance(value, str):
            value = value.split(",")
        return [key.strip() for key in value or [] if key and key.strip()]


def _duration(name: str, value: Any) -> timedelta:
    """A duration setting as a timedelta (a number is seconds); anything else is a
    configuration error, raised where the setting is first read."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ImproperlyConfigured(
            f"TRUSTED_IDENTITY[{name!r}] must be a timedelta (or seconds), at least 0"
        )
    return value


def _slugs(value: Any) -> frozenset[str]:
    """A list (or comma-separated string) of slugs as a set, stripped, empties dropped."""
    if isinstance(value, str):
        value = value.split(",")
    return frozenset(str(slug).strip() for slug in value or [] if slug and str(slug).strip())


app_settings = AppSettings()
