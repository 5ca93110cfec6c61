"""System checks: the app's settings, its encryption keys and its cache.

Every check the app registers, with its id (docs/settings.md lists them, from this module):

- ``W001`` no encryption keys with DEBUG on (a development key is derived)
- ``E001`` no encryption keys with DEBUG off
- ``E002`` encryption keys that are unusable
- ``E003`` ``READINESS_THRESHOLD`` not a number between 0 and 1
- ``E004`` a rate limit that does not parse
- ``E005`` ``PROXY_COUNT`` not a whole number of at least 1
- ``E006`` ``TRUSTED_IDENTITY`` not a dict, or a key in it the app does not know
  (a typo: the hint names the closest valid key)
- ``E007`` ``CACHE_ALIAS`` names no cache in ``CACHES``
- ``E008`` any other setting whose value the app can't use (a duration that is not a
  timedelta, a slug that is not one...): the message names it and what it must be
- ``E009`` a ``SIGN_AUTHENTICATION`` class whose models are not installed (DRF's
  ``TokenAuthentication`` without ``rest_framework.authtoken``)
- ``W002`` (``check --deploy``) a cache that server processes don't share
- ``W003`` ``SIGNING_SPACE`` is not one of ``SIGNING_SPACES``
- ``E010`` ``HOURLY_RETENTION`` shorter than the windows the app shows
- ``E011`` ``DAILY_RETENTION`` shorter than ``HOURLY_RETENTION``
- ``W010`` (``check --database``) ``prune`` has not run and counts wait
- ``E012`` a ``PRIVATE_KEYS`` entry that can't sign: not named ``"space/kind"``, a
  file that can't be read, not a private key (a public key, an encrypted or OpenSSH
  key), or one whose public half no platform could take (weak, another curve...)
- ``E013`` (``check --database``) the private key of a platform that verifies public
  keys only is none of its active public keys: the site can't sign for it
- ``W004`` (``check --database``) a platform of ``SIGNING_SPACES`` takes public-key
  tokens and ``PRIVATE_KEYS`` has no key for it
- ``W005`` (``check --database``) the private key of a ``secret`` or ``both`` platform is
  none of its active public keys (the site signs with the secret), or an entry names
  no platform

E003, E004, E005 and E008 come from one check that converts every setting of the table
in ``conf.py``, as reading it would; the others look at relations between settings (and
skip a setting that check reports) or beyond them. Hints name Django settings, not any
project's environment variables.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import DEFAULTS, app_settings, invalid_settings
from .crypto import KeyRing, KeyRingError


@register(Tags.security, deploy=False)
def check_encryption_keys(app_configs=None, **kwargs):
    read = _read("ENCRYPTION_KEYS")
    if read is None:
        return []
    keys = list(read[0])
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
    """Every setting converted as reading it would: a bad value fails at start, named."""
    errors = [
        Error(str(problem), hint=problem.setting.hint or None, id=problem.setting.check_id)
        for problem in invalid_settings()
    ]
    spaces = _read("SIGNING_SPACE", "SIGNING_SPACES")
    if spaces and spaces[0] and spaces[0] not in spaces[1]:
        errors.append(
            Warning(
                f"TRUSTED_IDENTITY['SIGNING_SPACE'] ({spaces[0]!r}) is not one of "
                "TRUSTED_IDENTITY['SIGNING_SPACES']: the sign view answers 404 to every "
                "request that names no space.",
                hint="Add it to SIGNING_SPACES (TRUSTED_IDENTITY_SIGNING_SPACES in the "
                "example project), or leave SIGNING_SPACES unset to serve it alone.",
                id="trusted_identity.W003",
            )
        )
    return errors


def _read(*names: str) -> list[Any] | None:
    """The settings' values, or None when one of them is bad (check_settings says so)."""
    try:
        return [getattr(app_settings, name) for name in names]
    except ImproperlyConfigured:
        return None


PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
}


@register(Tags.caches, deploy=True)
def check_shared_cache(app_configs=None, **kwargs):
    """With several server processes, a process-local cache counts rate limits per
    process. (Verification changes reach every process within LOOKUP_CHECK_INTERVAL
    whatever the cache: they go through the database.)"""
    read = _read("CACHE_ALIAS")
    if read is None:
        return []
    alias = read[0]
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend in PROCESS_LOCAL_CACHES:
        return [
            Warning(
                f"The cache {alias!r} ({backend.rsplit('.', 1)[-1]}) is not shared between "
                "processes: with several server processes, each counts the rate limits on its "
                "own (n processes allow n times TRUSTED_IDENTITY['RATE_LIMIT']) and looks "
                "platforms up in the database on its own.",
                hint=f"With more than one server process, point CACHES[{alias!r}] at a shared "
                "cache such as Redis (django.core.cache.backends.redis.RedisCache), or set "
                "TRUSTED_IDENTITY['CACHE_ALIAS'] to the alias of one.",
                id="trusted_identity.W002",
            )
        ]
    return []


@register(Tags.compatibility)
def check_retention(app_configs=None, **kwargs):
    """Hourly counts must outlive every window the app shows."""
    from datetime import timedelta

    problems = []
    read = _read("READINESS_WINDOW", "HOURLY_RETENTION", "DAILY_RETENTION")
    if read is None:
        return problems
    window, hourly, daily = read
    shortest = max(window, timedelta(days=7))  # the 7-day chart
    if shortest > hourly:
        problems.append(
            Error(
                f"TRUSTED_IDENTITY['HOURLY_RETENTION'] ({hourly}) is "
                f"shorter than the figures the app shows ({shortest}): `prune` would fold "
                "hours that the readiness rule and the chart still read.",
                hint="Set TRUSTED_IDENTITY['HOURLY_RETENTION'] to at least "
                "TRUSTED_IDENTITY['READINESS_WINDOW'] and 7 days.",
                id="trusted_identity.E010",
            )
        )
    if daily < hourly:
        problems.append(
            Error(
                "TRUSTED_IDENTITY['DAILY_RETENTION'] is shorter than HOURLY_RETENTION: days "
                "folded by `prune` would be deleted at once.",
                hint="Set TRUSTED_IDENTITY['DAILY_RETENTION'] longer (default 400 days).",
                id="trusted_identity.E011",
            )
        )
    return problems


@register(Tags.database)
def check_prune_runs(app_configs=None, databases=None, **kwargs):
    """``prune`` must run. This reads the database, so, like Django's own database
    checks, it runs only when ``check`` is given ``--database`` (and in ``migrate``)."""
    problems = []
    if databases and _read("HOURLY_RETENTION", "DAILY_RETENTION") is not None:
        from django.db import DatabaseError

        from .services.retention import retention_state

        try:
            state = retention_state()
        except DatabaseError:  # not migrated yet: nothing to say
            return problems
        if state.overdue:
            last = f"last ran {state.last_run:%Y-%m-%d}" if state.last_run else "has never run"
            problems.append(
                Warning(
                    f"Session-start counts past TRUSTED_IDENTITY['HOURLY_RETENTION'] are "
                    f"waiting: `manage.py trusted_identity prune` {last}, so the counts "
                    "table grows without bound.",
                    hint="Run `manage.py trusted_identity prune` daily, from cron or a "
                    'systemd timer (see docs/deploying.md, "Scheduled jobs").',
                    id="trusted_identity.W010",
                )
            )
    return problems


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
    read = _read("CACHE_ALIAS")
    if read is None or read[0] in settings.CACHES:
        return []
    alias = read[0]
    return [
        Error(
            f"TRUSTED_IDENTITY['CACHE_ALIAS'] is {alias!r}, which is not in CACHES.",
            hint="Add a cache of that alias to CACHES, or set TRUSTED_IDENTITY['CACHE_ALIAS'] "
            "to one of: " + ", ".join(repr(name) for name in settings.CACHES) + ".",
            id="trusted_identity.E007",
        )
    ]


@register()
def check_sign_authentication_models(app_configs=None, **kwargs):
    """An authentication class whose models are not installed (DRF's
    ``TokenAuthentication`` without ``rest_framework.authtoken``) would fail on every
    signed request; say so at start, with what to add."""
    read = _read("SIGN_AUTHENTICATION")
    if read is None or read[0] is None:
        return []
    errors = []
    for entry, problem in unusable_authenticators(read[0]):
        errors.append(
            Error(
                f"TRUSTED_IDENTITY['SIGN_AUTHENTICATION']: {entry} can't authenticate here: "
                f"{problem}.",
                hint="Add the app that holds its models to INSTALLED_APPS and run migrate "
                "(for DRF's TokenAuthentication: 'rest_framework' and "
                "'rest_framework.authtoken'), or name another authentication.",
                id="trusted_identity.E009",
            )
        )
    return errors


def unusable_authenticators(value: Any) -> list[tuple[str, str]]:
    """``(entry, problem)`` for each configured DRF class whose model can't be used here
    (the system check ``E009``): DRF's token classes find their model with
    ``get_model()``, which fails when the app that holds it is not installed."""
    entries = [value] if isinstance(value, str) or not isinstance(value, list | tuple) else value
    found = []
    for entry in entries:
        obj = entry
        if isinstance(entry, str):
            try:
                obj = import_string(entry)
            except ImportError:
                continue  # E008 says so
        get_model = getattr(obj, "get_model", None) if isinstance(obj, type) else None
        if get_model is None:
            continue
        try:
            model = obj().get_model()
        except Exception as exc:  # RuntimeError: "doesn't declare an explicit app_label"
            found.append((str(entry), str(exc).strip().splitlines()[0]))
            continue
        if not apps.is_installed(model._meta.app_config.name if model._meta.app_config else ""):
            found.append((str(entry), f"its model {model.__name__} is not installed"))
    return found


_KEY_HINT = (
    "Give each entry the PEM private key (or its file's path) whose public key was added "
    "to that platform: `manage.py trusted_identity generate-key-pair` makes a pair, "
    "`add-public-key` adds the public half, `public-keys` lists the platform's keys."
)


@register(Tags.security)
def check_private_keys(app_configs=None, **kwargs):
    """Every ``PRIVATE_KEYS`` entry read as signing would (once per process): a key that
    can't sign fails at start, named, never shown."""
    read = _read("PRIVATE_KEYS")
    if not read or not read[0]:
        return []
    from .services.site_keys import entry_problems

    return [
        Error(f"{problem}.", hint=_KEY_HINT, id="trusted_identity.E012")
        for problem in entry_problems()
    ]


@register(Tags.database)
def check_private_keys_match(app_configs=None, databases=None, **kwargs):
    """The site's keys against the platforms it signs for. Reads the database: only with
    ``check --database`` (and in ``migrate``), as Django's own database checks."""
    if not databases or _read("PRIVATE_KEYS", "SIGNING_SPACES") is None:
        return []
    from django.db import DatabaseError

    from .services.site_keys import platform_problems

    try:
        problems = platform_problems()
    except DatabaseError:  # not migrated yet: nothing to say
        return []
    missing_hint = (
        "Give TRUSTED_IDENTITY['PRIVATE_KEYS'] the platform's private key (PEM text or its "
        "file's path; in the environment, TRUSTED_IDENTITY_PRIVATE_KEYS as a JSON object), "
        "or, if this site never signs for that platform, add trusted_identity.W004 to "
        "SILENCED_SYSTEM_CHECKS."
    )
    made = {
        "trusted_identity.E013": lambda m: Error(m, hint=_KEY_HINT, id="trusted_identity.E013"),
        "trusted_identity.W004": lambda m: Warning(
            m, hint=missing_hint, id="trusted_identity.W004"
        ),
        "trusted_identity.W005": lambda m: Warning(m, hint=_KEY_HINT, id="trusted_identity.W005"),
    }
    return [made[problem.check_id](problem.message) for problem in problems]
