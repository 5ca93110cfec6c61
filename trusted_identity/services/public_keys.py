"""A platform's public keys (CONTRACT section 10): add, expire, remove, list with their use.

At most ``PublicKey.MAX_ACTIVE`` (3) keys verify at once per platform, each named by a
``kid`` (given, the one its JWK names, or its RFC 7638 thumbprint), with an optional
expiry. A key is read by ``publickeys`` first: a private key, a weak or unsupported
one is refused there and nothing is stored; a fourth active key, a second key of the
same ``kid`` or the same key twice is refused here. Every change is permission-checked
(``rotate``: owners and admins), audited on the platform, and bumps the verification
generation in its transaction, so every process honours it within
``LOOKUP_CHECK_INTERVAL`` of the commit. Expiry is judged by the database's clock,
as grace ends are.

Each key's use, for "may I remove the old key now?": its last verified start and its
starts in the last 24 hours, counted through the one counting path (``counting`` and
``countwrites``, the detail dimension ``key``), as secret use is (``secret_use``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from .. import outcomes
from ..dbclock import database_now
from ..exceptions import AlreadyExists, InvalidRequest, KeyNotFound
from ..formatting import moment
from ..models import DetailCount, Dimension, JwksSource, KeySource, Platform, PublicKey
from ..publickeys import PublicKey as ParsedKey
from ..publickeys import PublicKeyError, check_kid, parse_public_key
from .access import Actor, authorize
from .audit import audit
from .counting import hour_start
from .durations import parse_duration
from .lookup import verification_changed
from .secret_use import SECRET_QUIET_PERIOD

#: The longest expiry ``--expires`` takes (a key that should never expire has none).
MAX_KEY_LIFETIME = timedelta(days=3650)


def read_key(value: str | bytes | Mapping[str, Any]) -> ParsedKey:
    """A public key as given (PEM, DER, JWK), or InvalidRequest saying why not."""
    try:
        return parse_public_key(value)
    except PublicKeyError as exc:
        raise InvalidRequest(str(exc)) from None


def parse_expiry(text: str) -> timedelta:
    """``--expires`` as typed (``30d``, ``12h``): a duration from now, above zero."""
    duration = parse_duration(text, maximum=MAX_KEY_LIFETIME)
    if duration <= timedelta(0):
        raise InvalidRequest("a key's expiry must be in the future, such as 30d")
    return duration


def _kid_or_refusal(kid: str) -> str:
    try:
        return check_kid(kid)
    except PublicKeyError as exc:
        raise InvalidRequest(str(exc)) from None


def _locked(platform: Platform) -> Platform:
    return (
        Platform.objects.select_related("space").select_for_update(of=("self",)).get(pk=platform.pk)
    )


def add_public_key(
    platform: Platform,
    value: str | bytes | Mapping[str, Any],
    actor: Actor,
    *,
    kid: str | None = None,
    expires_at: datetime | None = None,
) -> PublicKey:
    """Add a public key to the platform; the row. ``kid`` None takes the JWK's own ``kid``,
    else the key's RFC 7638 thumbprint. Refused (InvalidRequest or AlreadyExists, nothing
    stored): a key ``publickeys`` refuses, an expiry not in the future, a fourth active
    key, more than ``PublicKey.MAX_STORED`` keys in all, a ``kid`` or a key already
    there."""
    authorize(actor, "rotate", platform.space_id)
    parsed = read_key(value)
    kid = _kid_or_refusal(kid if kid is not None else parsed.jwk_kid or parsed.thumbprint)
    with transaction.atomic():
        locked = _locked(platform)
        now = database_now()
        if expires_at is not None and expires_at <= now:
            raise InvalidRequest("a key's expiry must be in the future")
        stored = list(
            PublicKey.objects.filter(platform_id=locked.pk).values_list(
                "kid", "thumbprint", "expires_at"
            )
        )
        for their_kid, thumbprint, _ in stored:
            if their_kid == kid:
                raise AlreadyExists(f"{locked} already has a public key with kid {kid!r}")
            if thumbprint == parsed.thumbprint:
                raise AlreadyExists(f"{locked} already has this public key, as kid {their_kid!r}")
        active = sum(1 for *_, until in stored if until is None or until > now)
        if active >= PublicKey.MAX_ACTIVE:
            raise InvalidRequest(
                f"{locked} already has {PublicKey.MAX_ACTIVE} active public keys, the most "
                "it may have: remove or expire one first"
            )
        if len(stored) >= PublicKey.MAX_STORED:
            raise InvalidRequest(
                f"{locked} keeps {PublicKey.MAX_STORED} public keys, expired ones included: "
                "remove one first"
            )
        try:
            with transaction.atomic():
                row = PublicKey.objects.create(
                    platform=locked,
                    kid=kid,
                    alg=parsed.alg,
                    spki=parsed.spki_der,
                    thumbprint=parsed.thumbprint,
                    expires_at=expires_at,
                    added_at=now,
                    added_by=actor.user,
                    added_by_name=actor.display_name[:150],
                )
        except IntegrityError:  # the platform row is locked: only a race with itself
            raise AlreadyExists(f"{locked} already has a public key with kid {kid!r}") from None
        expiry = "" if expires_at is None else f"; it expires {moment(expires_at)}"
        audit(
            actor,
            locked,
            f"Added public key {kid!r} ({parsed.description}, {parsed.alg}, "
            f"{parsed.fingerprint}){expiry}.",
            action="add_public_key",
        )
        verification_changed()
    return row


def _get(platform: Platform, kid: str, *, lock: bool = False) -> PublicKey:
    rows = PublicKey.objects.filter(platform_id=platform.pk, kid=kid)
    row = (rows.select_for_update() if lock else rows).first()
    if row is None:
        raise KeyNotFound(f"{platform} has no public key with kid {kid!r}")
    return row


def remove_public_key(platform: Platform, kid: str, actor: Actor) -> PublicKey:
    """Remove the key named ``kid``: tokens it signed stop verifying within a second.
    Allowed for the last key too (a leaked key must go at once); the audit entry says
    when nothing that verifies is left. The removed row (no longer stored)."""
    authorize(actor, "rotate", platform.space_id)
    with transaction.atomic():
        locked = _locked(platform)
        row = _get(locked, kid, lock=True)
        parsed = ParsedKey.from_der(bytes(row.spki))
        row.delete()
        message = f"Removed public key {kid!r} ({parsed.description}, {parsed.fingerprint})."
        if locked.key_source != KeySource.SECRET and not has_public_keys(locked):
            message += " No public key that verifies is left: public-key tokens are now invalid."
        audit(actor, locked, message, action="remove_public_key")
        verification_changed()
    return row


def set_key_expiry(
    platform: Platform, kid: str, expires_at: datetime | None, actor: Actor, *, now: bool = False
) -> PublicKey:
    """When the key named ``kid`` stops verifying: ``expires_at`` (now or earlier: at once,
    by the database's clock; :func:`expire_public_key`), or never (None). A key made to
    verify again counts against the active keys. ``now`` expires it at the database's
    moment of the change, whatever ``expires_at``."""
    authorize(actor, "rotate", platform.space_id)
    with transaction.atomic():
        locked = _locked(platform)
        row = _get(locked, kid, lock=True)
        at = database_now()
        if (now or (expires_at is not None and expires_at <= at)) and not row.is_active(at):
            return row  # already expired: its expiry stands
        if now or (expires_at is not None and expires_at <= at):
            expires_at, message = at, f"Expired public key {kid!r} now."
        elif expires_at is not None:
            message = f"Public key {kid!r} expires {moment(expires_at)}."
        else:
            message = f"Public key {kid!r} no longer expires."
        if row.expires_at == expires_at:
            return row
        if not row.is_active(at) and (expires_at is None or expires_at > at):
            others = PublicKey.objects.filter(platform_id=locked.pk).exclude(pk=row.pk)
            if others.active(at).count() >= PublicKey.MAX_ACTIVE:
                raise InvalidRequest(
                    f"{locked} already has {PublicKey.MAX_ACTIVE} active public keys: "
                    "remove or expire one before this one verifies again"
                )
        row.expires_at = expires_at
        row.save(update_fields=["expires_at"])
        audit(actor, locked, message, action="expire_public_key")
        verification_changed()
    return row


def expire_public_key(platform: Platform, kid: str, actor: Actor) -> PublicKey:
    """Stop the key named ``kid`` now (by the database's clock), keeping it: a token that
    names it is then told ``key_expired``. :func:`set_key_expiry` at once."""
    return set_key_expiry(platform, kid, None, actor, now=True)


def has_public_keys(platform: Platform) -> bool:
    """Whether the platform has a public key that verifies now: a stored one, or its JWKS
    URL's (whose last good set is never empty)."""
    if PublicKey.objects.filter(platform_id=platform.pk).active(database_now()).exists():
        return True
    return JwksSource.objects.filter(pk=platform.pk).exists()


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class KeyInfo:
    """One stored key as the console and ``public-keys`` show it, with its use."""

    key_id: int
    kid: str
    alg: str
    description: str
    fingerprint: str
    thumbprint: str
    added_at: datetime
    added_by: str
    expires_at: datetime | None
    last_verified_at: datetime | None
    verified_last_24h: int
    now: datetime = field(default_factory=timezone.now)

    @property
    def active(self) -> bool:
        return self.expires_at is None or self.expires_at > self.now

    @property
    def in_use(self) -> bool:
        """Whether it verified a start within ``SECRET_QUIET_PERIOD`` (1 hour)."""
        last = self.last_verified_at
        return last is not None and self.now - last < SECRET_QUIET_PERIOD

    @property
    def safe_to_remove(self) -> bool:
        """Nothing used it for the quiet period: removing it turns no client away now."""
        return not self.in_use

    @property
    def state(self) -> str:
        """``expired``, ``in_use`` or ``unused`` (safe to remove)."""
        if not self.active:
            return "expired"
        return "in_use" if self.in_use else "unused"

    def as_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat().replace("+00:00", "Z")

        return {
            "kid": self.kid,
            "alg": self.alg,
            "key": self.description,
            "fingerprint": self.fingerprint,
            "thumbprint": self.thumbprint,
            "added_at": when(self.added_at),
            "added_by": self.added_by,
            "expires_at": when(self.expires_at),
            "state": self.state,
            "last_verified_at": when(self.last_verified_at),
            "verified_last_24h": self.verified_last_24h,
            "safe_to_remove": self.safe_to_remove,
        }


def key_usage(platform_ids: Sequence[int]) -> dict[int, list[KeyInfo]]:
    """Per platform, every stored key (oldest first) with its fingerprint, its last use
    and its starts in the last 24 hours (the hourly counts, to the hour). Two queries,
    after writing what this process counted."""
    outcomes.flush()
    now = timezone.now()
    result: dict[int, list[KeyInfo]] = {pk: [] for pk in platform_ids}
    rows = list(PublicKey.objects.filter(platform_id__in=platform_ids).order_by("added_at", "pk"))
    counts: dict[str, int] = defaultdict(int)
    if rows:
        for row in (
            DetailCount.objects.filter(
                platform_id__in=platform_ids,
                dimension=Dimension.KEY,
                value__in=[str(row.pk) for row in rows],
                hour__gte=hour_start(now - timedelta(hours=24)),
            )
            .values("value")
            .annotate(n=Sum("count"))
            .order_by()
        ):
            counts[row["value"]] += row["n"]
    for row in rows:
        parsed = ParsedKey.from_der(bytes(row.spki))
        result[row.platform_id].append(
            KeyInfo(
                key_id=row.pk,
                kid=row.kid,
                alg=row.alg,
                description=parsed.description,
                fingerprint=parsed.fingerprint,
                thumbprint=row.thumbprint,
                added_at=row.added_at,
                added_by=row.added_by_name,
                expires_at=row.expires_at,
                last_verified_at=row.last_verified_at,
                verified_last_24h=counts[str(row.pk)],
                now=now,
            )
        )
    return result


def public_keys_of(platform: Platform) -> list[KeyInfo]:
    """The platform's keys with their use (:func:`key_usage` for one platform)."""
    return key_usage([platform.pk])[platform.pk]
