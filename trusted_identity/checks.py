"""System checks: the app's settings, its encryption keys and its cache.

Every check the app registers, with its id (the README lists them too):

- ``W001`` no encryption keys with DEBUG on (a development key is derived)
- ``E001`` no encryption keys with DEBUG off
- ``E002`` encryption keys that are unusable
- ``E003`` ``READINESS_THRESHOLD`` not a number between 0 and 1
- ``E004`` a rate limit that does not parse
- ``E006`` ``TRUSTED_IDENTITY`` not a dict, or a key in it the app does not know
  (a typo: the hint names the closest valid key)
- ``E007`` ``CACHE_ALIAS`` names no cache in ``CACHES``
- ``W002`` (``check --deploy``) a cache that server processes don't share

Hints name Django settings, not any project's environment variables.
"""

from __future__ import annotations

import difflib

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import DEFAULTS, app_settings
from .crypto import KeyRing, KeyRingError


@register(Tags.security, deploy=False)
def check_encryption_keys(app_configs=None, **kwargs):
    keys = app_settings.encryption_keys()
    if not keys:
        if settings.DEBUG:
            return [
                Warning(
                    "TRUSTED_IDENTITY_ENCRYPTION_KEYS is not set: secrets are encrypted with a "
                    "development key derived from SECRET_KEY.",
                    hint="Before going to production, make a key with `manage.py "
                    "trusted_identity generate-key` and set TRUSTED_IDENTITY_ENCRYPTION_KEYS "
                    "(or TRUSTED_IDENTITY['ENCRYPTION_KEYS']) to it.",
                    id="trusted_identity.W001",
                )
            ]
        return [
            Error(
                "TRUSTED_IDENTITY_ENCRYPTION_KEYS is not set and DEBUG is off: platform "
                "secrets can't be encrypted or read.",
                hint="Make a key with `manage.py trusted_identity generate-key` and set the "
                "TRUSTED_IDENTITY_ENCRYPTION_KEYS environment variable (or "
                "TRUSTED_IDENTITY['ENCRYPTION_KEYS']) to it.",
                id="trusted_identity.E001",
            )
        ]
    try:
        KeyRing(keys)
    except KeyRingError as exc:
        return [
            Error(
                f"TRUSTED_IDENTITY_ENCRYPTION_KEYS is unusable: {exc}.",
                hint="Each key is 32 random bytes in URL-safe base64, comma-separated.",
                id="trusted_identity.E002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs):
    errors = []
    threshold = app_settings.READINESS_THRESHOLD
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        errors.append(
            Error(
                "TRUSTED_IDENTITY['READINESS_THRESHOLD'] must be a number between 0 and 1.",
                id="trusted_identity.E003",
            )
        )
    from .ratelimit import RateLimitError, parse_rate

    for name in ("RATE_LIMIT", "SIGN_RATE_LIMIT"):
        try:
            parse_rate(getattr(app_settings, name))
        except RateLimitError as exc:
            errors.append(Error(f"TRUSTED_IDENTITY['{name}']: {exc}", id="trusted_identity.E004"))
    return errors


PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
}


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs=None, **kwargs):
    """With several server processes, a process-local cache would keep serving a
    revoked secret or a stale enforcement flag in the other processes."""
    alias = app_settings.CACHE_ALIAS
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend in PROCESS_LOCAL_CACHES:
        return [
            Warning(
                f"The cache {alias!r} ({backend.rsplit('.', 1)[-1]}) is not shared between "
                "processes: a rotation, revocation or enforcement change reaches other server "
                "processes only when their cached lookup expires "
                "(TRUSTED_IDENTITY['LOOKUP_CACHE_TIMEOUT']).",
                hint=f"With more than one server process, point CACHES[{alias!r}] at a shared "
                "cache such as Redis (django.core.cache.backends.redis.RedisCache), or set "
                "TRUSTED_IDENTITY['CACHE_ALIAS'] to the alias of one.",
                id="trusted_identity.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_setting_names(app_configs=None, **kwargs):
    """A typo in ``TRUSTED_IDENTITY`` (``SIGNING_SAPCE``) would leave a default in force."""
    user_settings = getattr(settings, "TRUSTED_IDENTITY", None)
    if user_settings is None:
        return []
    if not isinstance(user_settings, dict):
        return [
            Error(
                f"settings.TRUSTED_IDENTITY must be a dict (got {type(user_settings).__name__}).",
                id="trusted_identity.E006",
            )
        ]
    errors = []
    for key in user_settings:
        if key in DEFAULTS:
            continue
        closest = difflib.get_close_matches(str(key).upper(), DEFAULTS, n=1, cutoff=0.6)
        hint = (
            f"Did you mean {closest[0]!r}?"
            if closest
            else "Valid keys: " + ", ".join(sorted(DEFAULTS)) + "."
        )
        errors.append(
            Error(
                f"TRUSTED_IDENTITY has a key the app does not know: {key!r}; it is ignored.",
                hint=hint,
                id="trusted_identity.E006",
            )
        )
    return errors


@register(Tags.caches)
def check_cache_alias(app_configs=None, **kwargs):
    """A missing alias would only show at run time, as a 503 on every session start."""
    alias = app_settings.CACHE_ALIAS
    if alias in settings.CACHES:
        return []
    return [
        Error(
            f"TRUSTED_IDENTITY['CACHE_ALIAS'] is {alias!r}, which is not in CACHES.",
            hint="Add a cache of that alias to CACHES, or set TRUSTED_IDENTITY['CACHE_ALIAS'] "
            "to one of: " + ", ".join(repr(name) for name in settings.CACHES) + ".",
            id="trusted_identity.E007",
        )
    ]
