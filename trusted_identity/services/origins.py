"""The CORS allow-list of web platforms (CONTRACT section 7).

A web platform lists the origins (``https://app.example.com``: scheme, host and
port, nothing else) whose pages may start its sessions from a browser. Origins are
stored normalised the way browsers send them in the ``Origin`` header (lower case,
IDNA host, default port left out), so a request's header is compared as it comes.
Other kinds (mobile, TV) have no list: their clients are not browsers.

Which platform a preflight is for: a browser's preflight ``OPTIONS`` carries no
custom header, so no API key. The preflight is therefore answered for an origin on
*any* web platform's list (:func:`cors_allowed` without a snapshot), and the POST
that follows, which names its platform by its API key, gets
``Access-Control-Allow-Origin`` only for an origin on *that* platform's list. What a
page may read is decided by the POST's answer, so an origin allowed for one space
gains nothing on another's platform; answers that name no platform (an unknown API
key, a rate-limited request) follow the preflight's rule, so a listed page can read
why it failed.

Every change is permission-checked ("enforce" in the space), audited on the
platform and bumps the verification generation: the lists are part of the cached
:class:`~trusted_identity.services.lookup.PlatformSnapshot`.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction

from ..exceptions import InvalidRequest
from ..models import AllowedOrigin, Platform, PlatformKind
from .access import Actor, authorize
from .audit import audit
from .lookup import PlatformSnapshot, any_platform_allows, verification_changed

#: The role permission needed to change a platform's allow-list.
ORIGINS_PERMISSION = "enforce"
#: At most this many origins per platform: an allow-list, not a directory.
MAX_ORIGINS = 100
MAX_ORIGIN_LENGTH = 300
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def normalize_origin(value: str) -> str:
    """``value`` as a browser serialises an origin, or InvalidRequest saying what is wrong.

    ``HTTPS://App.Example.com:443/`` becomes ``https://app.example.com``. Only
    ``http`` and ``https``; no wildcard, path, query, fragment or user name.
    """
    if not isinstance(value, str):
        raise InvalidRequest("an origin is a string such as https://app.example.com")
    text = value.strip()
    example = "give it as scheme://host[:port], such as https://app.example.com"
    if not text:
        raise InvalidRequest(f"the origin is empty: {example}")
    if len(text) > MAX_ORIGIN_LENGTH:
        raise InvalidRequest(f"the origin is longer than {MAX_ORIGIN_LENGTH} characters")
    if "*" in text:
        raise InvalidRequest(f"wildcards are not allowed: list each origin, {example}")
    if text.lower() == "null":
        raise InvalidRequest(
            "the 'null' origin (sandboxed frames, file:// pages) can't be allowed: "
            "any page can send it"
        )
    if any(ch.isspace() or ord(ch) < 0x20 or ch in "\\\x7f" for ch in text):
        raise InvalidRequest(f"the origin holds spaces or control characters: {example}")
    if "://" not in text:
        raise InvalidRequest(f"the origin has no scheme: {example}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidRequest(f"the origin's port or host is malformed: {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidRequest(f"the origin's scheme must be http or https, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidRequest(f"an origin has no user name or password: {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise InvalidRequest(f"an origin has no path, query or fragment: {example}")
    host = _normalize_host(parts.netloc, parts.hostname or "", example)
    if port is not None and not 0 < port <= 65535:
        raise InvalidRequest("the origin's port must be between 1 and 65535")
    if port is None and parts.netloc.endswith(":"):
        raise InvalidRequest(f"the origin's port is empty: {example}")
    suffix = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{suffix}"


def _normalize_host(netloc: str, hostname: str, example: str) -> str:
    if not hostname:
        raise InvalidRequest(f"the origin has no host: {example}")
    if netloc.startswith("["):
        if "%" in hostname:
            raise InvalidRequest("an origin's IPv6 address has no zone (%...)")
        try:
            address = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise InvalidRequest(
                f"the origin's host is malformed: {hostname!r} is not an IPv6 address"
            ) from None
        return f"[{address.compressed}]"
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidRequest(f"{hostname!r} is not a valid host name") from None
    labels = ascii_host.split(".")
    if _ends_in_a_number(labels):
        address = _whatwg_ipv4(labels)
        if address is None:
            raise InvalidRequest(
                f"{hostname!r} is not an IPv4 address a browser accepts, so no page can "
                "send it as its origin"
            )
        return str(address)
    if len(ascii_host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidRequest(f"{hostname!r} is not a valid host name")
    return ascii_host


def _ends_in_a_number(labels: list[str]) -> bool:
    """The URL Standard's "ends in a number" check: such a host is an IPv4 address."""
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    last = labels[-1]
    return bool(last) and ((last.isascii() and last.isdigit()) or _ipv4_number(last) is not None)


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 host as the URL Standard reads it: ``0x`` hex, a leading
    ``0`` octal, else decimal; None when it is none of these."""
    if not part:
        return None
    radix, digits = 10, part
    if part[:2] in ("0x", "0X"):
        radix, digits = 16, part[2:]
    elif len(part) > 1 and part[0] == "0":
        radix, digits = 8, part[1:]
    if not digits:
        return 0
    allowed = "0123456789abcdefABCDEF"[: 10 if radix == 10 else 8 if radix == 8 else 22]
    if not all(ch in allowed for ch in digits):
        return None
    return int(digits, radix)


def _whatwg_ipv4(labels: list[str]) -> ipaddress.IPv4Address | None:
    """The host as browsers parse it (``0x7f.1``, ``127.1``, ``2130706433`` are all
    ``127.0.0.1``), so a stored origin is the one the ``Origin`` header will carry;
    None where a browser refuses the URL."""
    if labels[-1] == "" and len(labels) > 1:
        labels = labels[:-1]
    if len(labels) > 4:
        return None
    numbers = [_ipv4_number(label) for label in labels]
    if any(number is None for number in numbers):
        return None
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last + sum(number * 256 ** (3 - index) for index, number in enumerate(leading))
    return ipaddress.IPv4Address(value)


def _require_web(platform: Platform) -> None:
    if platform.kind != PlatformKind.WEB:
        raise InvalidRequest(
            f"only web platforms have allowed origins; {platform.kind} clients are not "
            "browsers and need no CORS"
        )


def allowed_origins(platform: Platform) -> list[str]:
    """The platform's allow-list, sorted."""
    return list(
        AllowedOrigin.objects.filter(platform_id=platform.pk)
        .order_by("origin")
        .values_list("origin", flat=True)
    )


def origins_by_platform(platform_ids: list[int]) -> dict[int, list[str]]:
    """The allow-lists of many platforms in one query (the admin's settings page)."""
    found: dict[int, list[str]] = {pk: [] for pk in platform_ids}
    rows = (
        AllowedOrigin.objects.filter(platform_id__in=platform_ids)
        .order_by("platform_id", "origin")
        .values_list("platform_id", "origin")
    )
    for platform_id, origin in rows:
        found[platform_id].append(origin)
    return found


def allow_origin(platform: Platform, origin: str, actor: Actor) -> tuple[str, bool]:
    """Put an origin on a web platform's list: ``(normalised origin, whether it was added)``.

    Allowing an origin already listed changes nothing and writes no audit entry.
    """
    authorize(actor, ORIGINS_PERMISSION, platform.space_id)
    _require_web(platform)
    normalised = normalize_origin(origin)
    with transaction.atomic():
        locked = Platform.objects.select_for_update().select_related("space").get(pk=platform.pk)
        existing = AllowedOrigin.objects.filter(platform_id=locked.pk)
        if existing.filter(origin=normalised).exists():
            return normalised, False
        if existing.count() >= MAX_ORIGINS:
            raise InvalidRequest(
                f"{locked} already allows {MAX_ORIGINS} origins, the most a platform may list"
            )
        try:
            with transaction.atomic():
                AllowedOrigin.objects.create(platform_id=locked.pk, origin=normalised)
        except IntegrityError:  # allowed meanwhile by another writer
            return normalised, False
        audit(actor, locked, f"Allowed the origin {normalised} (CORS).", action="allow_origin")
        verification_changed()
    return normalised, True


def deny_origin(platform: Platform, origin: str, actor: Actor) -> str:
    """Take an origin off a web platform's list; InvalidRequest if it is not on it."""
    authorize(actor, ORIGINS_PERMISSION, platform.space_id)
    _require_web(platform)
    normalised = normalize_origin(origin)
    with transaction.atomic():
        locked = Platform.objects.select_for_update().select_related("space").get(pk=platform.pk)
        deleted, _ = AllowedOrigin.objects.filter(platform_id=locked.pk, origin=normalised).delete()
        if not deleted:
            listed = ", ".join(allowed_origins(locked)) or "none"
            raise InvalidRequest(
                f"{normalised} is not an allowed origin of {locked} (allowed: {listed})"
            )
        audit(
            actor, locked, f"Removed the allowed origin {normalised} (CORS).", action="deny_origin"
        )
        verification_changed()
    return normalised


def cors_allowed(origin: str | None, snapshot: PlatformSnapshot | None = None) -> bool:
    """Whether an answer to a request from ``origin`` may carry CORS headers.

    With the snapshot of the platform the request named (by its API key): only an
    origin on that platform's list. Without one (a preflight, an unknown key, a
    request refused before its platform was looked up): an origin on any web
    platform's list. ``origin`` is compared exactly as the browser sent it.
    """
    if not origin:
        return False
    if snapshot is not None:
        return origin in snapshot.origins
    return any_platform_allows(origin)
