"""A platform's JWKS URL (CONTRACT section 10): set, cleared, fetched again, shown.

A platform verifies public-key tokens with its stored keys (``public_keys``), the keys
its JWKS URL publishes, or both: ``key_tables.public_key_set`` joins them, and a stored
key wins over a fetched one of the same ``kid`` (or the same key). Stored keys are at
most 3; a set may hold up to ``JwksSource.MAX_KEYS`` (10) usable keys.

- **Setting** a URL (:func:`set_jwks_url`) fetches it at once: a URL that does not
  answer with a usable set is refused with the fetch's error and nothing is stored (a
  changed URL keeps the old one and its set). ``https://`` only; ``http://`` to this
  machine only with ``DEBUG`` or ``JWKS_ALLOW_HTTP_LOOPBACK``. Setting and clearing
  (:func:`clear_jwks_url`) need the ``rotate`` permission, as keys do, are audited and
  bump the verification generation.
- **Fetched again** (:func:`refresh`, the one path) when a start's token names a
  ``kid`` no key has (:func:`after_verification`), when the set is older than
  ``JWKS_MAX_AGE``, or by hand (:func:`refresh_jwks`). The first two are claimed at
  most once a minute per platform *across processes*: this process's throttle first
  (no query), then a row-locked compare-and-set of ``attempted_at`` that skips a row
  another process holds. A flood of made-up kids sent with the public API key thus
  makes at most one fetch a minute per platform.
- **On an unknown kid** the start that found it fetches, synchronously, bounded by
  ``JWKS_TIMEOUT`` (the fetch runs on a thread of its own that the start waits for at
  most that long, DNS included): a rotation's first token verifies at once, and the
  only start ever held is the one naming the unknown kid, once a minute per platform,
  for at most ``JWKS_TIMEOUT``. Everyone else is answered at once. A set grown older
  than ``JWKS_MAX_AGE`` is fetched again in the background, never holding a start.
- A fetch that fails, or finds no usable key, keeps the last good set and records its
  error (a few words of ours, never the answer's body). A set that differs from the
  stored one replaces it, audited (the kids added and removed) with the generation
  bumped, so every process verifies with it within ``LOOKUP_CHECK_INTERVAL``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from .. import runtime
from ..conf import app_settings
from ..dbclock import database_now, database_time
from ..exceptions import InvalidRequest
from ..jwksfetch import JwksError, JwksRead, check_url, fetch, read_jwks, shown
from ..keytokens import UNKNOWN_KEY
from ..models import JwksSource, KeySource, Platform, PublicKey
from ..publickeys import PublicKey as ParsedKey
from .access import Actor, authorize
from .audit import audit
from .lookup import PlatformSnapshot, jwks_snapshot, verification_changed
from .public_keys import has_public_keys

logger = logging.getLogger("trusted_identity")

T = TypeVar("T")

#: The shortest time between two fetches of a platform's set that a start may cause.
MIN_INTERVAL = timedelta(minutes=1)
UNKNOWN_KID = "a token named an unknown kid"
GROWN_OLD = "the set was older than JWKS_MAX_AGE"


def allow_http_loopback() -> bool:
    """Whether ``http://`` to this machine is taken: with ``DEBUG`` or the setting."""
    return bool(django_settings.DEBUG) or app_settings.JWKS_ALLOW_HTTP_LOOPBACK


def checked_url(url: str) -> str:
    """``url`` if a JWKS may be fetched from it, else InvalidRequest saying why."""
    try:
        return check_url(url, allow_http_loopback=allow_http_loopback())
    except JwksError as exc:
        raise InvalidRequest(str(exc)) from None


def _bounded(work: Callable[[], T], timeout: float) -> T:
    """``work()``, waited for at most ``timeout`` seconds (and a little, for the thread):
    on a thread of its own where threads run, so that nothing of the fetch (a DNS query
    that hangs included) holds the caller longer. The thread touches no database."""
    if not runtime.current().threads:
        return work()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller, raised there
            box["error"] = exc

    thread = threading.Thread(target=run, name="trusted-identity-jwks-fetch", daemon=True)
    with runtime.signals_blocked():
        thread.start()
    thread.join(timeout + 0.5)
    if thread.is_alive():
        raise JwksError(f"no whole answer within {timeout:g} s (JWKS_TIMEOUT)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def fetch_set(url: str) -> JwksRead:
    """The usable keys at ``url`` now, or JwksError: one fetch within ``JWKS_TIMEOUT``."""
    timeout = float(app_settings.JWKS_TIMEOUT)
    options = {
        "timeout": timeout,
        "max_bytes": app_settings.JWKS_MAX_BYTES,
        "ca_bundle": app_settings.JWKS_CA_BUNDLE,
        "allow_http_loopback": allow_http_loopback(),
    }

    def work() -> JwksRead:  # plain Python: no setting or database read on the thread
        return read_jwks(fetch(url, **options), max_keys=JwksSource.MAX_KEYS)

    try:
        return _bounded(work, timeout)
    except JwksError:
        raise
    except Exception as exc:  # a fetch never fails a caller with a traceback
        logger.warning("Trusted Identity's JWKS fetch failed (%s)", type(exc).__name__)
        raise JwksError(f"could not fetch it ({type(exc).__name__})") from None


def _stored(found: JwksRead) -> list[dict[str, str]]:
    """A set as its row keeps it: public keys only (kid, algorithm, SPKI DER in base64)."""
    return [
        {"kid": k.kid, "alg": k.key.alg, "spki": base64.b64encode(k.key.spki_der).decode("ascii")}
        for k in found.keys
    ]


def _fingerprint(entry: dict[str, str]) -> str:
    return ParsedKey.from_der(base64.b64decode(entry["spki"])).fingerprint


def _described(entries: Sequence[dict[str, str]]) -> str:
    return ", ".join(f"{shown(e['kid'])} ({e['alg']}, {_fingerprint(e)})" for e in entries)


def _changes(old: Sequence[dict[str, str]], new: Sequence[dict[str, str]]) -> str:
    """The kids a new set added and removed, for its audit entry."""
    before = {(e["kid"], e["spki"]) for e in old}
    after = {(e["kid"], e["spki"]) for e in new}
    added = [e for e in new if (e["kid"], e["spki"]) not in before]
    removed = [e for e in old if (e["kid"], e["spki"]) not in after]
    parts = [f"{len(new)} key{'s' if len(new) != 1 else ''}"]
    if added:
        parts.append(f"added {_described(added)}")
    if removed:
        parts.append("removed " + ", ".join(shown(e["kid"]) for e in removed))
    return "; ".join(parts)


# ------------------------------------------------------------------ set, clear


def _locked(platform: Platform) -> Platform:
    return (
        Platform.objects.select_related("space").select_for_update(of=("self",)).get(pk=platform.pk)
    )


def set_jwks_url(platform: Platform, url: str, actor: Actor) -> JwksSource:
    """Verify the platform's public-key tokens with the keys ``url`` publishes too, once
    a fetch found a usable set there (fetched before any row is locked); refused with
    InvalidRequest, nothing stored, otherwise. The row."""
    authorize(actor, "rotate", platform.space_id)
    url = checked_url(url)
    try:
        found = fetch_set(url)
    except JwksError as exc:
        raise InvalidRequest(f"{url}: {exc}; nothing was stored") from None
    keys = _stored(found)
    with transaction.atomic():
        locked = _locked(platform)
        now = database_now()
        row = JwksSource.objects.select_for_update().filter(pk=locked.pk).first()
        old_url, old_keys = (row.url, row.keys) if row is not None else (None, [])
        row = row or JwksSource(platform=locked)
        row.url, row.keys, row.skipped, row.error = url, keys, list(found.skipped), ""
        row.fetched_at = row.attempted_at = row.set_at = now
        row.set_by_name = actor.display_name[:150]
        row.save()
        if old_url is None:
            message = f"Set the JWKS URL to {url}: {_changes([], keys)}"
        elif old_url == url:
            message = f"Set the JWKS URL {url} again: {_changes(old_keys, keys)}"
        else:
            message = f"Changed the JWKS URL from {old_url} to {url}: {_changes(old_keys, keys)}"
        if found.skipped:
            message += (
                f"; {len(found.skipped)} entr{'ies' if len(found.skipped) != 1 else 'y'} left out"
            )
        audit(actor, locked, message + ".", action="jwks_url")
        verification_changed()
    return row


def clear_jwks_url(platform: Platform, actor: Actor) -> bool:
    """Stop verifying with the platform's JWKS URL: its keys stop verifying within a
    second. Whether there was one (nothing written when not)."""
    authorize(actor, "rotate", platform.space_id)
    with transaction.atomic():
        locked = _locked(platform)
        row = JwksSource.objects.select_for_update().filter(pk=locked.pk).first()
        if row is None:
            return False
        row.delete()
        message = f"Removed the JWKS URL {row.url}: its {len(row.keys)} keys no longer verify."
        if locked.key_source != KeySource.SECRET and not has_public_keys(locked):
            message += " No public key that verifies is left: public-key tokens are now invalid."
        audit(actor, locked, message, action="jwks_url")
        verification_changed()
    return True


# ------------------------------------------------------------------ fetching again


@dataclass(frozen=True)
class Refresh:
    """What one go at fetching a platform's set did: whether it fetched (it may have been
    another process's turn), stored a new set, and the error that kept the last one."""

    fetched: bool
    changed: bool = False
    error: str = ""
    source: JwksSource | None = None


def _claim(platform_id: int, *, force: bool, only_old: bool) -> str | None:
    """Take this minute's fetch of the platform's set; its URL, or None when the minute is
    taken (or, ``only_old``, the set is not old any more), or another process holds the
    row right now (skipped, never waited for). ``force``: whatever the minute."""
    now = database_now()
    with transaction.atomic():
        rows = JwksSource.objects.select_for_update(skip_locked=True).filter(pk=platform_id)
        if not force:
            rows = rows.filter(
                Q(attempted_at__isnull=True) | Q(attempted_at__lte=now - MIN_INTERVAL)
            )
        if only_old:
            rows = rows.filter(fetched_at__lt=now - app_settings.JWKS_MAX_AGE)
        url = rows.values_list("url", flat=True).first()
        if url is not None:
            JwksSource.objects.filter(pk=platform_id).update(attempted_at=now)
    return url


def refresh(
    platform_id: int,
    *,
    cause: str,
    actor: Actor | None = None,
    force: bool = False,
    only_old: bool = False,
) -> Refresh:
    """Fetch the platform's set again if this minute's fetch is free (``force``: anyway),
    and keep what it found: a new set (audited, the generation bumped), or the error
    beside the last good set. ``actor`` None: the app's own refresh, audited as such
    with ``cause``."""
    url = _claim(platform_id, force=force, only_old=only_old)
    if url is None:
        return Refresh(fetched=False)
    try:
        found: JwksRead | JwksError = fetch_set(url)
    except JwksError as exc:
        found = exc
    with transaction.atomic():
        row = (
            JwksSource.objects.select_for_update(of=("self",))
            .select_related("platform__space")
            .filter(pk=platform_id)
            .first()
        )
        if row is None or row.url != url:  # cleared or changed during the fetch
            return Refresh(fetched=True, error="the URL changed during the fetch")
        if isinstance(found, JwksError):
            row.error = str(found)[:300]
            row.save(update_fields=["error"])
            return Refresh(fetched=True, error=row.error, source=row)
        keys, old = _stored(found), row.keys
        row.keys, row.skipped, row.error = keys, list(found.skipped), ""
        row.fetched_at = database_now()
        row.save(update_fields=["keys_json", "skipped_json", "error", "fetched_at"])
        changed = sorted((e["kid"], e["spki"]) for e in old) != sorted(
            (e["kid"], e["spki"]) for e in keys
        )
        if changed:
            who = actor or Actor(user=None, channel="code", name="jwks-refresh", detail=cause)
            audit(
                who,
                row.platform,
                f"New key set from the JWKS URL {url}: {_changes(old, keys)}.",
                action="jwks_keys",
            )
            verification_changed()
    return Refresh(fetched=True, changed=changed, source=row)


def refresh_jwks(platform: Platform, actor: Actor) -> Refresh:
    """Fetch the platform's set now, by hand (the CLI's ``--refresh``, the admin's
    button): whatever the minute, with the ``rotate`` permission."""
    authorize(actor, "rotate", platform.space_id)
    if not JwksSource.objects.filter(pk=platform.pk).exists():
        raise InvalidRequest(f"{platform} has no JWKS URL")
    return refresh(platform.pk, cause="by hand", actor=actor, force=True)


def after_verification(snapshot: PlatformSnapshot, reason: str | None) -> PlatformSnapshot | None:
    """After a public-key token was checked on a platform with a JWKS URL: on an unknown
    ``kid``, the set fetched again now (this minute's turn permitting) and the snapshot
    with the new set to check the token once more, else None; a set older than
    ``JWKS_MAX_AGE`` is fetched again in the background. Never raises."""
    jwks = snapshot.jwks
    if jwks is None:
        return None
    made = runtime.current()
    platform_id = snapshot.platform_id
    try:
        if reason == UNKNOWN_KEY:
            if not made.jwks_throttle.take(platform_id, MIN_INTERVAL.total_seconds()):
                return None
            done = refresh(platform_id, cause=UNKNOWN_KID)
            if done.changed and done.source is not None:
                return replace(snapshot, jwks=jwks_snapshot(done.source))
            return None
        age = database_time() - (jwks.fetched_at or 0.0)
        if age > app_settings.JWKS_MAX_AGE.total_seconds() and made.jwks_throttle.take(
            platform_id, MIN_INTERVAL.total_seconds()
        ):
            work = partial(refresh, platform_id, cause=GROWN_OLD, only_old=True)
            if made.threads:
                made.jwks_refreshes.start(f"jwks-{platform_id}", work)
            else:
                work()
    except DatabaseError:
        logger.warning("Trusted Identity could not fetch platform #%s's JWKS again", platform_id)
    except Exception:  # a refresh never fails the start that asked for it
        logger.exception("Trusted Identity's JWKS refresh of platform #%s failed", platform_id)
    return None


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class JwksKeyInfo:
    """One key of a platform's JWKS set as the console and the CLI show it."""

    kid: str
    alg: str
    description: str
    fingerprint: str
    thumbprint: str
    #: A stored key has its kid or is the same key: the stored one verifies instead.
    shadowed: bool = False


@dataclass(frozen=True)
class JwksState:
    """A platform's JWKS URL and what its fetches found."""

    url: str
    keys: tuple[JwksKeyInfo, ...]
    skipped: tuple[str, ...]
    fetched_at: datetime | None
    attempted_at: datetime | None
    error: str
    set_at: datetime
    set_by: str

    @property
    def grown_old(self) -> bool:
        """Older than ``JWKS_MAX_AGE``: the next start that uses it fetches it again."""
        fetched = self.fetched_at
        return fetched is None or timezone.now() - fetched > app_settings.JWKS_MAX_AGE

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "url": self.url,
            "fetched_at": when(self.fetched_at),
            "attempted_at": when(self.attempted_at),
            "error": self.error or None,
            "set_at": when(self.set_at),
            "set_by": self.set_by,
            "keys": [
                {
                    "kid": k.kid,
                    "alg": k.alg,
                    "key": k.description,
                    "fingerprint": k.fingerprint,
                    "thumbprint": k.thumbprint,
                    "shadowed": k.shadowed,
                }
                for k in self.keys
            ],
            "skipped": list(self.skipped),
        }


def jwks_states(platform_ids: Sequence[int]) -> dict[int, JwksState]:
    """Per platform that has a JWKS URL, its :class:`JwksState`. Two queries."""
    rows = list(JwksSource.objects.filter(pk__in=list(platform_ids)))
    if not rows:
        return {}
    stored: dict[int, list[tuple[str, str]]] = {}
    for platform_id, kid, thumbprint in PublicKey.objects.filter(
        platform_id__in=[row.pk for row in rows]
    ).values_list("platform_id", "kid", "thumbprint"):
        stored.setdefault(platform_id, []).append((kid, thumbprint))
    states = {}
    for row in rows:
        mine = stored.get(row.pk, [])
        keys = []
        for entry in row.keys:
            parsed = ParsedKey.from_der(base64.b64decode(entry["spki"]))
            keys.append(
                JwksKeyInfo(
                    kid=entry["kid"],
                    alg=parsed.alg,
                    description=parsed.description,
                    fingerprint=parsed.fingerprint,
                    thumbprint=parsed.thumbprint,
                    shadowed=any(
                        kid == entry["kid"] or thumbprint == parsed.thumbprint
                        for kid, thumbprint in mine
                    ),
                )
            )
        states[row.pk] = JwksState(
            url=row.url,
            keys=tuple(keys),
            skipped=tuple(row.skipped),
            fetched_at=row.fetched_at,
            attempted_at=row.attempted_at,
            error=row.error,
            set_at=row.set_at,
            set_by=row.set_by_name,
        )
    return states


def jwks_state(platform: Platform) -> JwksState | None:
    """The platform's :class:`JwksState`, or None without a JWKS URL."""
    return jwks_states([platform.pk]).get(platform.pk)
