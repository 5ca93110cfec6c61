"""The app's settings: one ``TRUSTED_IDENTITY`` dict, declared here as a table.

Each setting is declared once (``SETTINGS``): its default, the kind of value it takes
(which converts it: a duration becomes a timedelta, a list of slugs a frozenset), an
environment variable read when it is unset, and a one-line doc. The table drives both
the reading (``app_settings.X`` is the converted value, converted on first read and
remembered until ``reload()``) and the system check ``trusted_identity.E008`` (and
E003, E004, E005), which converts every setting at start, so a bad value fails
``manage.py check`` instead of answering 503 inside a request. Read at run time with
the checks skipped, a bad value raises ImproperlyConfigured with the same message.

::

    TRUSTED_IDENTITY = {
        "ENCRYPTION_KEYS": [...],          # default: $TRUSTED_IDENTITY_ENCRYPTION_KEYS
        "SIGNING_SPACE": "my-space",       # the space the sign view uses without ?space=
        "DEFAULT_GRACE": timedelta(hours=24),
        ...
    }
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.validators import slug_re
from django.utils.module_loading import import_string

from .rates import RateError, parse_rate

#: The check id of a setting whose value the app can't use, unless its row names another.
INVALID_SETTING = "trusted_identity.E008"


class InvalidSetting(ImproperlyConfigured):
    """A ``TRUSTED_IDENTITY`` value the app can't use: names the setting and what it must
    be. Raised when the setting is read, and reported by the system check."""

    def __init__(self, setting: Setting, value: Any) -> None:
        got = f"a value of type {type(value).__name__}" if setting.secret else repr(value)
        super().__init__(
            f"TRUSTED_IDENTITY[{setting.name!r}] must be {setting.kind.must_be} (got {got})."
        )
        self.setting = setting


# -- kinds of value: each converts a configured value, or raises ValueError or TypeError


@dataclass(frozen=True)
class Kind:
    must_be: str  # the end of "TRUSTED_IDENTITY['X'] must be ..."
    convert: Callable[[Any], Any]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_duration(value: Any) -> timedelta:
    if _is_number(value):
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValueError(value)
    return value


def _to_seconds(value: Any) -> float:
    return _to_duration(value).total_seconds()


def _to_whole_seconds(value: Any) -> int:
    seconds = _to_seconds(value)
    if not seconds.is_integer():
        raise ValueError(value)
    return int(seconds)


def whole(minimum: int) -> Kind:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(value)
        return value

    return Kind(f"a whole number of at least {minimum}", convert)


def whole_between(minimum: int, maximum: int) -> Kind:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        if not minimum <= value <= maximum:
            raise ValueError(value)
        return value

    return Kind(f"a whole number from {minimum} to {maximum}", convert)


def _to_fraction(value: Any) -> float:
    if not _is_number(value) or not 0 <= value <= 1:
        raise ValueError(value)
    return float(value)


def _to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _to_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(value)
    return value


def _to_rate(value: Any) -> str | None:
    """The text as given (the rate limits count with it), once it parses."""
    if value is not None and not isinstance(value, str):
        raise TypeError(value)
    try:
        parse_rate(value)
    except RateError as exc:
        raise ValueError(value) from exc
    return value


def _to_slug(value: Any) -> str:
    if not isinstance(value, str) or not slug_re.match(value.strip()):
        raise ValueError(value)
    return value.strip()


def _to_blank_as_none(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``kind``, where None and the empty string (an unset environment variable) are None."""
    return lambda value: None if value is None or value == "" else kind(value)


def _items(value: Any) -> list[Any]:
    """A list, tuple or set as a list; a string as its comma-separated parts, stripped."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple | set | frozenset):
        raise TypeError(value)
    return list(value)


def _to_slugs(value: Any) -> frozenset[str]:
    return frozenset(_to_slug(item) for item in _items(value) if item not in (None, ""))


def _to_keys(value: Any) -> tuple[str, ...]:
    if any(not isinstance(key, str) for key in _items(value)):
        raise TypeError("not a string")
    return tuple(key.strip() for key in _items(value) if key.strip())


def _is_dotted_path(value: Any) -> bool:
    parts = value.split(".") if isinstance(value, str) else []
    return len(parts) > 1 and all(part.isidentifier() for part in parts)


def _to_dotted_paths(value: Any) -> tuple[str, ...]:
    paths = tuple(_items(value))
    if not all(_is_dotted_path(path) for path in paths):
        raise ValueError(value)
    return paths


def _to_authentication(value: Any) -> tuple[Any, ...]:
    """Dotted paths (which must import) or the objects themselves, at least one."""
    entries = tuple(_items(value)) if isinstance(value, list | tuple | str) else (value,)
    if not entries:
        raise ValueError(value)
    for entry in entries:
        if isinstance(entry, str):
            if not _is_dotted_path(entry):
                raise ValueError(entry)
            import_string(entry)  # an ImportError is a ValueError of its own kind here
        elif not callable(entry):
            raise TypeError(entry)
    return entries


def _to_ca_bundle(value: Any) -> str | None:
    """A PEM file of certificate authorities that ``ssl`` loads, or None (the system's)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(value)
    import ssl  # only for the check: a file that does not load is refused here

    path = os.fspath(value)
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(value) from exc
    return path


def seconds_between(minimum: float, maximum: float) -> Kind:
    def convert(value: Any) -> float:
        seconds = _to_seconds(value)
        if not minimum <= seconds <= maximum:
            raise ValueError(value)
        return seconds

    return Kind(f"a number of seconds (or a timedelta) from {minimum:g} to {maximum:g}", convert)


def _to_private_keys(value: Any) -> dict[str, str]:
    """``{"space/kind": PEM text or a file path}``; from the environment, the same as a
    JSON object. The keys themselves are read by ``services.site_keys`` (once per
    process) and checked by ``trusted_identity.E012``; never echoed."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        value = json.loads(value)  # a JSONDecodeError is a ValueError
    if not isinstance(value, Mapping):
        raise TypeError(value)
    entries = {}
    for name, key in value.items():
        if not isinstance(name, str) or not isinstance(key, str) or not key.strip():
            raise ValueError("an entry")
        entries[name.strip()] = key
    return entries


def optional(kind: Kind) -> Kind:
    """``kind``, or None (which stays None)."""
    return Kind(f"{kind.must_be}, or None", lambda v: None if v is None else kind.convert(v))


DURATION = Kind("a timedelta (or seconds), at least 0", _to_duration)
SECONDS = Kind("a number of seconds (or a timedelta), at least 0", _to_seconds)
WHOLE_SECONDS = Kind("a whole number of seconds (or a timedelta), at least 0", _to_whole_seconds)
FRACTION = Kind("a number between 0 and 1", _to_fraction)
BOOLEAN = Kind("True or False", _to_bool)
TEXT = Kind("a non-empty string", _to_text)
RATE = Kind('a rate as "<count>/<s|m|h>", such as "600/m", or "off"', _to_rate)
OPTIONAL_SLUG = Kind(
    "a slug (letters, numbers, underscores or hyphens), or None", _to_blank_as_none(_to_slug)
)
HEADER = Kind(
    'a request.META key such as "HTTP_X_FORWARDED_FOR", or None', _to_blank_as_none(_to_text)
)
SLUGS = Kind("a list of slugs, or a comma-separated string of them", _to_slugs)
KEYS = Kind("a comma-separated string of keys, or a list of them", _to_keys)
DOTTED_PATHS = Kind("a list of dotted paths", _to_dotted_paths)
CA_BUNDLE = Kind("the path of a PEM file of CA certificates that loads, or None", _to_ca_bundle)
PRIVATE_KEYS = Kind(
    'a dict of "space/kind" to PEM text or a PEM file\'s path (in the environment: that '
    "dict as a JSON object)",
    _to_private_keys,
)
AUTHENTICATION = Kind(
    "a dotted path that imports, a callable, or a non-empty list of them, or None",
    lambda v: None if v is None else _to_authentication(v),
)


# -- the table


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    kind: Kind
    doc: str
    #: An environment variable read when the setting is unset (or None).
    env: str | None = None
    #: Computes the value to convert when the setting is unset (or None), from the dict.
    fallback: Callable[[Mapping[str, Any]], Any] | None = None
    #: The documentation's words for the default when they are not the default's own.
    documented_as: str | None = None
    check_id: str = INVALID_SETTING
    hint: str = ""
    secret: bool = False  # never echo the value in an error

    def value(self, configured: Mapping[str, Any]) -> Any:
        """The converted value from ``configured`` (the TRUSTED_IDENTITY dict)."""
        value = configured.get(self.name)
        if value is None and (self.env or self.fallback or self.name not in configured):
            if self.env and os.environ.get(self.env):
                value = os.environ[self.env]
            elif self.fallback is not None:
                value = self.fallback(configured)
            else:
                value = self.default
        try:
            return self.kind.convert(value)
        except (ValueError, TypeError, ImportError):
            raise InvalidSetting(self, value) from None

    def documented_default(self) -> list[str]:
        """How the documentation's settings table writes the default: one or more code spans."""
        if self.documented_as is not None:
            return [self.documented_as]
        shown = [] if self.default in (None, "") and self.env else [python_literal(self.default)]
        return ([f"${self.env}"] if self.env else []) + shown


def python_literal(value: Any) -> str:
    """A default as a settings file would write it: ``timedelta(hours=24)``, ``"pk"``."""
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
            if seconds and seconds % size == 0:
                return f"timedelta({unit}={seconds // size})"
        return f"timedelta(seconds={seconds})"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _signing_space_alone(configured: Mapping[str, Any]) -> list[str]:
    space = SETTINGS["SIGNING_SPACE"].value(configured)
    return [space] if space else []


# fmt: off
SETTINGS: dict[str, Setting] = {
    setting.name: setting
    for setting in [
        Setting("ENCRYPTION_KEYS", "", KEYS, "AES-256 keys; the first encrypts, all decrypt.",
                env="TRUSTED_IDENTITY_ENCRYPTION_KEYS", secret=True),
        Setting("SIGNING_SPACE", None, OPTIONAL_SLUG,
                "The space the sign view signs for when the request names none."),
        Setting("SIGNING_SPACES", None, SLUGS,
                "The only spaces the sign view signs for (default: SIGNING_SPACE alone).",
                fallback=_signing_space_alone, documented_as="[SIGNING_SPACE]"),
        Setting("USER_ID_ATTRIBUTE", "pk", TEXT,
                "The attribute of request.user that is signed."),
        Setting("DEFAULT_GRACE", timedelta(hours=24), DURATION,
                "How long a rotated-out secret keeps verifying unless the rotation says."),
        Setting("READINESS_WINDOW", timedelta(days=7), DURATION,
                "The window of the rollout figures and the readiness rule."),
        Setting("READINESS_THRESHOLD", 0.99, FRACTION,
                "The valid share of identified users needed to turn enforcement on.",
                check_id="trusted_identity.E003"),
        Setting("READINESS_MIN_STARTS", 100, whole(0),
                "Distinct identified users needed before the figures tell anything."),
        Setting("SECRET_PREFIX", "tis_", TEXT,
                "Prefix of generated secrets, so that secret scanners spot leaks."),
        Setting("API_KEY_PREFIX", "tik_", TEXT, "Prefix of generated public API keys."),
        Setting("MAX_BODY_BYTES", 64 * 1024, whole(1),
                "The largest session-start body accepted."),
        Setting("MAX_USER_ID_LENGTH", 1024, whole(1),
                "The longest user id accepted, in characters."),
        Setting("RATE_LIMIT", "600/m", optional(RATE),
                "Session starts per client address (IPv6: prefix) and platform.",
                env="TRUSTED_IDENTITY_RATE_LIMIT", check_id="trusted_identity.E004"),
        Setting("UNKNOWN_KEY_RATE_LIMIT", "60/m", optional(RATE),
                "Session starts per client address whose API key no cache knows, "
                "counted before the database is read.",
                check_id="trusted_identity.E004"),
        Setting("IPV6_RATE_LIMIT_PREFIX", 64, whole_between(1, 128),
                "The IPv6 prefix length the rate limits group client addresses by."),
        Setting("SIGN_RATE_LIMIT", "120/m", optional(RATE), "Sign-view requests per user.",
                check_id="trusted_identity.E004"),
        Setting("CLIENT_IP_HEADER", None, HEADER,
                "The request.META key trusted proxies append the client address to."),
        Setting("PROXY_COUNT", 1, whole(1),
                "How many trusted proxies append to CLIENT_IP_HEADER.",
                check_id="trusted_identity.E005",
                hint="The number of trusted proxies that append to CLIENT_IP_HEADER; "
                "without a proxy, leave CLIENT_IP_HEADER unset instead."),
        Setting("CACHE_ALIAS", "default", TEXT,
                "The cache of the rate limits and the platform lookup."),
        Setting("LOOKUP_CACHE_TIMEOUT", 300, WHOLE_SECONDS,
                "Seconds a platform lookup may stay in the cache at most."),
        Setting("LOOKUP_CHECK_INTERVAL", 0.5, SECONDS,
                "Seconds between two reads of the verification generation by a process."),
        Setting("LOCAL_LOOKUP_CACHE", True, BOOLEAN,
                "Keep looked-up platforms in process memory too (see nearcache.py)."),
        Setting("COUNT_FLUSH_INTERVAL", 0.5, SECONDS,
                "Seconds a process gathers session-start counts before writing; 0: at once."),
        Setting("HOURLY_RETENTION", timedelta(days=14), DURATION,
                "How long hourly counts are kept before `prune` folds them into days."),
        Setting("DAILY_RETENTION", timedelta(days=400), DURATION,
                "How long daily counts are kept before `prune` deletes them."),
        Setting("VERSIONS_PER_DAY", 50, whole(0),
                "Distinct app and SDK versions counted per platform and day."),
        Setting("FAILURE_LOG_PER_SECOND", 2, whole(0),
                "Failed starts logged per platform, reason, second and process."),
        Setting("FAILURE_LOG_MAX_ROWS", 1000, whole(0),
                "Failed starts kept per platform (the newest)."),
        Setting("FAILURE_LOG_RETENTION", timedelta(days=7), DURATION,
                "How long the failure log keeps a row before `prune` deletes it."),
        Setting("ALERT_REJECTIONS_PER_HOUR", 100, optional(whole(1)),
                "Rejected starts in an hour that raise the alert; None: never."),
        Setting("ALERT_GRACE_ENDING_WITHIN", timedelta(hours=1), optional(DURATION),
                "A previous secret verifying this close to its grace's end alerts; None: never."),
        Setting("TOKEN_LEEWAY", timedelta(seconds=60), SECONDS,
                "How far a token's exp may lie in the past and its iat in the future."),
        Setting("TOKEN_TTL", timedelta(hours=1), DURATION,
                "The lifetime of the tokens made unless asked otherwise."),
        Setting("MAX_TOKEN_LENGTH", 4096, whole(1),
                "The longest `signed` accepted when it has a token's shape."),
        Setting("EXPIRED_SECRET_RETENTION", timedelta(days=30), DURATION,
                "How long a secret whose grace has ended is kept to name expired_secret."),
        Setting("TESTER_RATE_LIMIT", "30/m", optional(RATE),
                "Signature tests (admin and `test-signature`) per user.",
                check_id="trusted_identity.E004"),
        Setting("CLI_ACTOR_USERNAME", "trusted-identity-cli", TEXT,
                "The name the CLI's audit entries record when no --actor is given (no user row)."),
        Setting("PRIVATE_KEYS", {}, PRIVATE_KEYS,
                "The site's private keys, by \"space/kind\": its producers sign public-key "
                "tokens with them.",
                env="TRUSTED_IDENTITY_PRIVATE_KEYS", secret=True),
        Setting("SIGN_AUTHENTICATION", None, AUTHENTICATION,
                "Who the sign view signs (None: Django's session login)."),
        Setting("CORS_MAX_AGE", 3600, WHOLE_SECONDS,
                "Seconds a browser may keep the answer to a CORS preflight."),
        Setting("LEAN_PATH_SKIPS_MIDDLEWARE", (), DOTTED_PATHS,
                "Middlewares the lean session path may skip although it does not know them."),
        Setting("JWKS_TIMEOUT", 5.0, seconds_between(0.1, 60),
                "The longest a JWKS fetch may take, from connecting to the last byte."),
        Setting("JWKS_MAX_BYTES", 64 * 1024, whole_between(1024, 1024 * 1024),
                "The largest JWKS answer read; a larger one is refused."),
        Setting("JWKS_MAX_AGE", timedelta(minutes=10), DURATION,
                "How old a platform's JWKS may grow before a start that uses it "
                "fetches it again, in the background."),
        Setting("JWKS_CA_BUNDLE", None, CA_BUNDLE,
                "The certificate authorities JWKS hosts are verified with (None: the system's)."),
        Setting("JWKS_ALLOW_HTTP_LOOPBACK", False, BOOLEAN,
                "Take http:// JWKS URLs to this machine (loopback) with DEBUG off too."),
    ]
}
# fmt: on

#: Every setting's default, by name (the names are the keys TRUSTED_IDENTITY may have).
DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}


def configured() -> Mapping[str, Any]:
    """The site's ``TRUSTED_IDENTITY`` dict (empty when unset, or not a dict: the check
    trusted_identity.E006 names that mistake)."""
    value = getattr(django_settings, "TRUSTED_IDENTITY", None)
    return value if isinstance(value, dict) else {}


def invalid_settings() -> list[InvalidSetting]:
    """Every setting whose value the app can't use, converted afresh (the system check)."""
    found: dict[str, InvalidSetting] = {}
    values = configured()
    for setting in SETTINGS.values():
        try:
            setting.value(values)
        except InvalidSetting as exc:
            found.setdefault(str(exc), exc)  # SIGNING_SPACES reports SIGNING_SPACE's too
    return list(found.values())


class AppSettings:
    """Attribute access to ``settings.TRUSTED_IDENTITY``, converted by the table.

    Converted on first use, not at import, and then an instance attribute: session
    start reads several per request, and no later read goes through ``__getattr__``.
    ``reload()`` forgets them; the ``setting_changed`` receiver calls it, so
    ``override_settings`` and the ``settings`` fixture work.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            setting = SETTINGS[name]
        except KeyError:
            raise AttributeError(f"unknown trusted-identity setting {name!r}") from None
        value = setting.value(configured())
        self.__dict__[name] = value
        return value

    def reload(self) -> None:
        for name in SETTINGS:
            self.__dict__.pop(name, None)

    def encryption_keys(self) -> list[str]:
        """The configured keys as a list of stripped, non-empty strings."""
        return list(self.ENCRYPTION_KEYS)


app_settings = AppSettings()
