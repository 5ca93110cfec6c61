"""The business operations of Trusted Identity, in one place.

The admin, the management command and the HTTP views call these functions and
hold no rules of their own: who may do what, how a secret is rotated, when
enforcement may be turned on, how a session start is decided and counted.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from functools import lru_cache
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from . import outcomes, signals
from .conf import app_settings
from .crypto import DecryptionError, KeyRing
from .exceptions import (
    AlreadyExists,
    InvalidApiKey,
    InvalidRequest,
    NotReady,
    PermissionDenied,
    PlatformNotFound,
    ServiceUnavailable,
    SignatureInvalid,
    SignatureRequired,
    SpaceNotFound,
    TrustedIdentityError,
    UserNotFound,
)
from .keyring import get_key_ring
from .models import (
    Outcome,
    OutcomeCount,
    Platform,
    PlatformKind,
    PlatformSecret,
    Role,
    Space,
    SpaceMembership,
)
from .nearcache import near_cache
from .signing import HmacKey, generate_secret, sign, verify

logger = logging.getLogger("trusted_identity")
audit_logger = logging.getLogger("trusted_identity.audit")


# --------------------------------------------------------------------------- actors


@dataclass(frozen=True)
class Actor:
    """Who performs an operation, and through which door.

    ``channel`` is ``"admin"`` for people in the admin (their space role is
    checked) or ``"cli"`` for the management command, which is trusted: whoever
    runs it already holds the database and the encryption keys.
    """

    user: AbstractBaseUser
    channel: str = "admin"
    detail: str = ""

    @classmethod
    def admin(cls, user: AbstractBaseUser) -> Actor:
        return cls(user=user, channel="admin")

    @property
    def trusted(self) -> bool:
        return self.channel == "cli"


def get_cli_actor(username: str | None = None, os_user: str = "") -> Actor:
    """The actor the CLI writes audit entries as.

    With a username, that user; otherwise a dedicated inactive account with no
    usable password, created on first use, so history shows "trusted-identity-cli".
    """
    user_model = get_user_model()
    if username:
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            raise UserNotFound(f"no user named {username!r}") from None
    else:
        username = app_settings.CLI_ACTOR_USERNAME
        try:
            user = user_model._default_manager.get_by_natural_key(username)
        except user_model.DoesNotExist:
            user = user_model(**{user_model.USERNAME_FIELD: username}, is_active=False)
            user.set_unusable_password()
            user.save()
    detail = f"command line, OS user {os_user}" if os_user else "command line"
    return Actor(user=user, channel="cli", detail=detail)


# ------------------------------------------------------------------ permissions

#: What each role may do in its space. Superusers may do everything everywhere.
#: ``change_space`` (rename it) and ``delete_platform`` are admin-console operations.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(
        {
            "view",
            "reveal",
            "rotate",
            "enforce",
            "manage_members",
            "change_space",
            "delete_platform",
        }
    ),
    Role.ADMIN: frozenset({"view", "reveal", "rotate", "enforce"}),
    Role.VIEWER: frozenset({"view"}),
}


def spaces_visible_to(user: AbstractBaseUser):
    """The spaces a user may see at all: every space for superusers, else their own."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return Space.objects.none()
    if user.is_superuser:
        return Space.objects.all()
    return Space.objects.filter(memberships__user=user).distinct()


def role_of(user: AbstractBaseUser, space: Space | int) -> str | None:
    space_id = space if isinstance(space, int) else space.pk
    if not getattr(user, "is_authenticated", False):
        return None
    return (
        SpaceMembership.objects.filter(space_id=space_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def can(user: AbstractBaseUser, action: str, space: Space | int) -> bool:
    """Whether ``user`` may do ``action`` ("view", "reveal", "rotate", ...) in ``space``."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return False
    if user.is_superuser:
        return True
    role = role_of(user, space)
    return role is not None and action in ROLE_PERMISSIONS.get(role, frozenset())


def _is_active_staff(user: AbstractBaseUser) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def roles_allowing(action: str) -> list[str]:
    """The roles whose members may do ``action`` in their space."""
    return [role for role, actions in ROLE_PERMISSIONS.items() if action in actions]


def restrict_to_spaces(queryset, user: AbstractBaseUser, action: str = "view", space_field="space"):
    """``queryset`` narrowed to rows in spaces where ``user`` may do ``action``.

    ``space_field`` is the lookup from the queryset's model to the space (``"pk"``
    for spaces themselves). One subquery, no extra query: fit for list pages.
    """
    if not _is_active_staff(user):
        return queryset.none()
    if user.is_superuser:
        return queryset
    space_ids = SpaceMembership.objects.filter(
        user_id=user.pk, role__in=roles_allowing(action)
    ).values("space_id")
    return queryset.filter(**{f"{space_field}__in": space_ids})


@dataclass(frozen=True)
class Permissions:
    """What one user may do in which space: read once (one query), asked many times.

    Gives the same answers as :func:`can`; the admin keeps one per request so a
    list page costs no permission query per row.
    """

    staff: bool  # an active staff user: may use the admin console at all
    superuser: bool
    roles: dict[int, str] = field(default_factory=dict)

    def role(self, space: Space | int) -> str | None:
        return self.roles.get(space if isinstance(space, int) else space.pk)

    def can(self, action: str, space: Space | int) -> bool:
        if not self.staff:
            return False
        if self.superuser:
            return True
        role = self.role(space)
        return role is not None and action in ROLE_PERMISSIONS.get(role, frozenset())

    def can_any(self, action: str) -> bool:
        """Whether there is at least one space where the user may do ``action``."""
        if not self.staff:
            return False
        return self.superuser or any(
            action in ROLE_PERMISSIONS.get(role, frozenset()) for role in self.roles.values()
        )

    @property
    def may_create_spaces(self) -> bool:
        """Only superusers create (and delete) spaces: a space is a tenant."""
        return self.staff and self.superuser


def permissions_for(user: AbstractBaseUser) -> Permissions:
    staff = _is_active_staff(user)
    if not staff or user.is_superuser:
        return Permissions(staff=staff, superuser=staff and user.is_superuser)
    roles = dict(SpaceMembership.objects.filter(user_id=user.pk).values_list("space_id", "role"))
    return Permissions(staff=True, superuser=False, roles=roles)


def _authorize(actor: Actor, action: str, space_id: int) -> None:
    if actor.trusted:
        return
    if not can(actor.user, action, space_id):
        raise PermissionDenied(f"you may not {action} in this space")


# ------------------------------------------------------------------------ audit


def _audit(actor: Actor | None, obj: Any, message: str, flag: int = CHANGE) -> None:
    """One LogEntry (shown in the object's admin history) and one audit log line.

    The message says what happened; it never carries a secret.
    """
    _audit_many(actor, [obj], message, flag)


def _audit_many(
    actor: Actor | None, objects: Sequence[Any], message: str, flag: int = CHANGE
) -> None:
    """The same audit entry for each object, written with one INSERT."""
    if actor is None or not objects:
        return
    text = f"{message} [{actor.detail}]" if actor.detail else message
    LogEntry.objects.log_actions(
        user_id=actor.user.pk,
        queryset=list(objects),
        action_flag=flag,
        change_message=text,
        single_object=len(objects) == 1,
    )
    verb = {ADDITION: "addition", CHANGE: "change", DELETION: "deletion"}[flag]
    for obj in objects:
        audit_logger.info(
            "%s by %s on %s %s: %s", verb, actor.user.get_username(), obj._meta.label, obj.pk, text
        )


# -------------------------------------------------------------- spaces, platforms


def get_space(slug: str) -> Space:
    if "\x00" in slug:  # no slug has one, and PostgreSQL refuses it in a query
        raise SpaceNotFound(f"no space with slug {slug!r}")
    try:
        return Space.objects.get(slug=slug)
    except Space.DoesNotExist:
        raise SpaceNotFound(f"no space with slug {slug!r}") from None


def validate_kind(kind: str) -> str:
    if kind not in PlatformKind.values:
        raise PlatformNotFound(
            f"unknown platform kind {kind!r}; expected one of {', '.join(PlatformKind.values)}"
        )
    return kind


def get_platform(space_slug: str, kind: str) -> Platform:
    validate_kind(kind)
    if "\x00" in space_slug:  # PostgreSQL refuses NUL in a query: no such space
        get_space(space_slug)
    try:
        return Platform.objects.select_related("space").get(space__slug=space_slug, kind=kind)
    except Platform.DoesNotExist:
        get_space(space_slug)  # a missing space is named as such
        raise PlatformNotFound(f"space {space_slug!r} has no {kind} platform") from None


def create_space(slug: str, name: str = "", actor: Actor | None = None) -> Space:
    try:
        validate_slug(slug)
    except ValidationError:
        raise InvalidRequest(
            f"invalid slug {slug!r}: use letters, numbers, underscores or hyphens"
        ) from None
    if len(slug) > Space._meta.get_field("slug").max_length:
        raise InvalidRequest("the slug is longer than 64 characters")
    try:
        with transaction.atomic():
            space = Space.objects.create(slug=slug, name=name or slug)
    except IntegrityError:
        raise AlreadyExists(f"a space with slug {slug!r} already exists") from None
    _audit(actor, space, "Created the space.", ADDITION)
    return space


def new_api_key() -> str:
    return app_settings.API_KEY_PREFIX + secrets.token_urlsafe(24)


def add_platform(space: Space, kind: str, actor: Actor | None = None) -> Platform:
    """A new platform with its API key and its first secret."""
    validate_kind(kind)
    if actor is not None:
        _authorize(actor, "rotate", space.pk)
    try:
        with transaction.atomic():
            platform = Platform.objects.create(space=space, kind=kind, api_key=new_api_key())
            _store_new_secret(platform, timezone.now())
    except IntegrityError:
        raise AlreadyExists(f"space {space.slug!r} already has a {kind} platform") from None
    _audit(actor, platform, "Added the platform with a new secret.", ADDITION)
    return platform


def _new_secret_row(platform: Platform, now: datetime) -> tuple[PlatformSecret, str]:
    plaintext = generate_secret(f"{app_settings.SECRET_PREFIX}{platform.kind}_")
    row = PlatformSecret(platform=platform, created_at=now)
    row.set_secret(plaintext)
    return row, plaintext


def _store_new_secret(platform: Platform, now: datetime) -> str:
    row, plaintext = _new_secret_row(platform, now)
    row.save()
    return plaintext


# ---------------------------------------------------------------------- secrets


_DURATION_RE = re.compile(r"^(\d{1,6})([smhdw]?)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 1}
MAX_GRACE = timedelta(days=90)


def parse_duration(text: str) -> timedelta:
    """``"0"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"90s"`` or ``"2w"`` as a timedelta."""
    match = _DURATION_RE.match(text.strip().lower()) if isinstance(text, str) else None
    if not match:
        raise InvalidRequest(
            f"invalid duration {text!r}: use a number and a unit, such as 0, 30m, 24h or 7d"
        )
    value = timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])
    if value > MAX_GRACE:
        raise InvalidRequest(f"duration {text!r} is longer than the 90-day maximum")
    return value


def describe_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "none (revoked at once)"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def current_secret_row(platform: Platform) -> PlatformSecret:
    row = platform.secrets.filter(retired_at__isnull=True).first()
    if row is None:
        raise ServiceUnavailable(f"platform {platform} has no current secret")
    return row


def _decrypt(row: PlatformSecret) -> str:
    try:
        return row.get_secret()
    except DecryptionError as exc:
        logger.error(
            "Cannot decrypt secret row %s of platform %s: %s", row.pk, row.platform_id, exc
        )
        raise ServiceUnavailable(
            f"the secret of platform #{row.platform_id} (row {row.pk}) can't be decrypted: {exc}"
        ) from None


def reveal_secret(platform: Platform, actor: Actor) -> str:
    """The current secret in plaintext, for a permitted actor, always audited."""
    _authorize(actor, "reveal", platform.space_id)
    plaintext = _decrypt(current_secret_row(platform))
    _audit(actor, platform, "Revealed the current secret.")
    signals.secret_revealed.send(sender=Platform, platform=platform, user=actor.user)
    return plaintext


def _checked_grace(grace: timedelta | None) -> timedelta:
    if grace is None:
        grace = app_settings.DEFAULT_GRACE
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise InvalidRequest("the grace period must be between 0 and 90 days")
    return grace


def _rotate_locked(locked: Sequence[Platform], actor: Actor, grace: timedelta) -> list[str]:
    """Rotate platforms whose rows the caller holds locked; the new plaintexts, in order.

    Expired previous secrets are dropped, the current ones retire with ``grace``,
    and each platform gets a new current secret: three statements for any number
    of platforms, plus one audit INSERT.
    """
    now = timezone.now()
    ids = [platform.pk for platform in locked]
    PlatformSecret.objects.filter(platform_id__in=ids, valid_until__lt=now).delete()
    PlatformSecret.objects.filter(platform_id__in=ids, retired_at__isnull=True).update(
        retired_at=now, valid_until=now + grace
    )
    rows, plaintexts = [], []
    for platform in locked:
        row, plaintext = _new_secret_row(platform, now)
        rows.append(row)
        plaintexts.append(plaintext)
    PlatformSecret.objects.bulk_create(rows)
    _audit_many(
        actor, locked, f"Rotated the secret; previous secret grace: {describe_duration(grace)}."
    )
    for platform in locked:
        _invalidate_on_commit(platform.api_key)
    return plaintexts


def rotate_secret(platform: Platform, actor: Actor, grace: timedelta | None = None) -> str:
    """A new current secret; the old one verifies until ``grace`` has passed (0: revoked).

    Runs in one transaction with the platform row locked, so two rotations at once
    leave exactly one current secret and a failure leaves the old one current.
    Returns the new plaintext.
    """
    _authorize(actor, "rotate", platform.space_id)
    grace = _checked_grace(grace)
    with transaction.atomic():
        locked = (
            Platform.objects.select_related("space")
            .select_for_update(of=("self",))
            .get(pk=platform.pk)
        )
        (plaintext,) = _rotate_locked([locked], actor, grace)
    signals.secret_rotated.send(sender=Platform, platform=locked, user=actor.user, grace=grace)
    return plaintext


#: Platforms rotated per round of statements in a bulk rotation (bounds memory).
ROTATION_CHUNK = 500


def rotate_secrets(
    platforms: Iterable[Platform], actor: Actor, grace: timedelta | None = None
) -> int:
    """Rotate several platforms at once (the admin's bulk action): all of them, or none.

    One transaction; rows are locked in primary-key order, so two bulk rotations
    can't deadlock, and written in chunks of ``ROTATION_CHUNK`` with bulk
    statements. The new secrets are not returned: a person reveals them one by one.
    Returns how many platforms were rotated.
    """
    grace = _checked_grace(grace)
    platforms = list(platforms)
    if not actor.trusted:
        allowed = permissions_for(actor.user)
        if not all(allowed.can("rotate", p.space_id) for p in platforms):
            raise PermissionDenied("you may not rotate some of these platforms")
    ids = sorted({platform.pk for platform in platforms})
    rotated: list[Platform] = []
    with transaction.atomic():
        for start in range(0, len(ids), ROTATION_CHUNK):
            chunk = ids[start : start + ROTATION_CHUNK]
            locked = list(
                Platform.objects.select_related("space")  # str() in the audit names the space
                .select_for_update(of=("self",))
                .filter(pk__in=chunk)
                .order_by("pk")
            )
            _rotate_locked(locked, actor, grace)
            rotated.extend(locked)
    for platform in rotated:
        signals.secret_rotated.send(
            sender=Platform, platform=platform, user=actor.user, grace=grace
        )
    return len(rotated)


def previous_secret_valid_until(platform: Platform) -> datetime | None:
    """When the last of the still-verifying previous secrets stops verifying."""
    now = timezone.now()
    latest = (
        platform.secrets.filter(retired_at__isnull=False, valid_until__gt=now)
        .order_by("-valid_until")
        .values_list("valid_until", flat=True)
        .first()
    )
    return latest


# ----------------------------------------------------------------------- figures


@dataclass
class Figures:
    """Session-start counts of one platform over a window, and what they mean."""

    valid: int = 0
    invalid: int = 0
    missing: int = 0
    visitor: int = 0
    rejected: int = 0

    @property
    def identified(self) -> int:
        """Session starts that named a user (every outcome but visitor)."""
        return self.valid + self.invalid + self.missing + self.rejected

    @property
    def valid_share(self) -> float | None:
        """Share of identified starts with a valid signature; None when there were none."""
        return self.valid / self.identified if self.identified else None

    def is_ready(self, threshold: float | None = None) -> bool:
        threshold = app_settings.READINESS_THRESHOLD if threshold is None else threshold
        share = self.valid_share
        return share is None or share >= threshold

    def add(self, outcome: str, count: int) -> None:
        setattr(self, outcome, getattr(self, outcome) + count)

    def as_dict(self) -> dict[str, Any]:
        share = self.valid_share
        return {
            "valid": self.valid,
            "invalid": self.invalid,
            "missing": self.missing,
            "visitor": self.visitor,
            "rejected": self.rejected,
            "identified": self.identified,
            "valid_share": None if share is None else round(share, 6),
            "ready": self.is_ready(),
        }


def readiness_since(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now - app_settings.READINESS_WINDOW


def figures_for(platform_ids: Iterable[int], since: datetime | None = None) -> dict[int, Figures]:
    """Figures per platform over the readiness window, in one query."""
    ids = list(platform_ids)
    outcomes.flush()  # what this process counted but has not written yet
    result = {pk: Figures() for pk in ids}
    if not ids:
        return result
    rows = (
        OutcomeCount.objects.filter(
            platform_id__in=ids, hour__gte=_hour_start(since or readiness_since())
        )
        .values("platform_id", "outcome")
        .annotate(total=Sum("count"))
        .order_by()
    )
    for row in rows:
        result[row["platform_id"]].add(row["outcome"], row["total"])
    return result


def readiness(platform: Platform) -> Figures:
    return figures_for([platform.pk])[platform.pk]


def daily_figures(
    platform_ids: Sequence[int], days: int = 7
) -> dict[int, list[tuple[date, Figures]]]:
    """Per platform, one ``(day, Figures)`` for each of the last ``days`` days (UTC), oldest
    first: the admin's small rollout chart."""
    today = timezone.now().date()
    day_list = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    series = {pk: {day: Figures() for day in day_list} for pk in platform_ids}
    if platform_ids:
        start = datetime.combine(day_list[0], datetime.min.time(), tzinfo=dt_timezone.utc)
        rows = (
            OutcomeCount.objects.filter(platform_id__in=platform_ids, hour__gte=start)
            .annotate(day=TruncDate("hour", tzinfo=dt_timezone.utc))
            .values("platform_id", "day", "outcome")
            .annotate(total=Sum("count"))
            .order_by()
        )
        for row in rows:
            if row["day"] in series[row["platform_id"]]:
                series[row["platform_id"]][row["day"]].add(row["outcome"], row["total"])
    return {pk: list(days_map.items()) for pk, days_map in series.items()}


def status(space_slug: str | None = None) -> list[dict[str, Any]]:
    """Every space (or one) with its platforms' enforcement and figures: ``status --json``."""
    spaces = Space.objects.order_by("slug").prefetch_related("platforms")
    if space_slug is not None:
        spaces = spaces.filter(pk=get_space(space_slug).pk)
    spaces = list(spaces)
    platforms = [p for s in spaces for p in s.platforms.all()]
    figures = figures_for([p.pk for p in platforms])
    return [
        {
            "slug": space.slug,
            "name": space.name,
            "platforms": [
                {
                    "kind": platform.kind,
                    "api_key": platform.api_key,
                    "enforced": platform.enforced,
                    **figures[platform.pk].as_dict(),
                }
                for platform in space.platforms.all()
            ],
        }
        for space in spaces
    ]


# ------------------------------------------------------------------ enforcement


def set_enforcement(
    platform: Platform,
    enabled: bool,
    actor: Actor,
    *,
    force: bool = False,
    reason: str = "",
) -> Platform:
    """Turn enforcement on or off, following the readiness rule.

    Turning on is refused with :class:`NotReady` when, in the readiness window,
    identified session starts exist and their valid share is below the threshold,
    unless ``force`` is given with a ``reason``, which is recorded in the audit.
    """
    _authorize(actor, "enforce", platform.space_id)
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = Platform.objects.select_for_update().select_related("space").get(pk=platform.pk)
        if locked.enforced == enabled:
            return locked
        message = "Turned enforcement on." if enabled else "Turned enforcement off."
        if enabled:
            figures = readiness(locked)
            if not figures.is_ready():
                if not force:
                    raise NotReady(_not_ready_message(figures), figures)
                if not reason:
                    raise InvalidRequest("overriding the readiness rule needs a reason")
                message = (
                    f"Turned enforcement on below the readiness threshold "
                    f"({_percent(figures.valid_share)} valid); override reason: {reason}"
                )
        locked.enforced = enabled
        locked.enforcement_changed_at = timezone.now()
        locked.save(update_fields=["enforced", "enforcement_changed_at"])
        _audit(actor, locked, message)
        _invalidate_on_commit(locked.api_key)
    signals.enforcement_changed.send(
        sender=Platform, platform=locked, user=actor.user, enforced=enabled, reason=reason
    )
    return locked


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.2f}%"


def _not_ready_message(figures: Figures) -> str:
    return (
        f"signing is not rolled out: {_percent(figures.valid_share)} of "
        f"{figures.identified} identified session starts in the readiness window had a valid "
        f"signature, below the {_percent(app_settings.READINESS_THRESHOLD)} threshold; "
        "override explicitly to turn enforcement on anyway"
    )


# ---------------------------------------------------------------- memberships


def grant(space: Space, username: str, role: str, actor: Actor) -> SpaceMembership:
    """Make ``username`` staff and a member of ``space`` with ``role``."""
    _authorize(actor, "manage_members", space.pk)
    if role not in Role.values:
        raise InvalidRequest(f"unknown role {role!r}; expected one of {', '.join(Role.values)}")
    user_model = get_user_model()
    with transaction.atomic():
        try:
            # get_by_natural_key is a manager method, not a QuerySet one.
            user = user_model._default_manager.select_for_update().get(
                **{user_model.USERNAME_FIELD: username}
            )
        except user_model.DoesNotExist:
            raise UserNotFound(f"no user named {username!r}") from None
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        membership, _created = SpaceMembership.objects.update_or_create(
            space=space, user=user, defaults={"role": role}
        )
        _audit(actor, space, f"Granted {username} the {role} role.")
    return membership


def revoke(space: Space, username: str, actor: Actor) -> None:
    _authorize(actor, "manage_members", space.pk)
    user_model = get_user_model()
    with transaction.atomic():
        deleted, _ = SpaceMembership.objects.filter(
            space=space, **{f"user__{user_model.USERNAME_FIELD}": username}
        ).delete()
        if not deleted:
            raise UserNotFound(f"{username!r} is not a member of space {space.slug!r}")
        _audit(actor, space, f"Revoked {username}'s membership.")


# ---------------------------------------------------------- the hot path: lookup


@dataclass(frozen=True)
class SecretSnapshot:
    ciphertext: str
    expires_at: float | None  # end of grace as a Unix time; None for the current secret


@dataclass(frozen=True)
class PlatformSnapshot:
    """What session start needs of a platform; cached, holding ciphertexts only."""

    platform_id: int
    space_slug: str
    kind: str
    enforced: bool
    secrets: tuple[SecretSnapshot, ...] = field(default=())


def _cache_key(api_key: str) -> str:
    # API keys are URL-safe; hashing keeps odd client input from making odd cache keys.
    return (
        "trusted_identity:platform:v1:"
        + hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()
    )


def _cache():
    return caches[app_settings.CACHE_ALIAS]


def _load_snapshot(api_key: str) -> PlatformSnapshot | None:
    platform = (
        Platform.objects.select_related("space")
        .only("id", "kind", "enforced", "space__slug")
        .filter(api_key=api_key)
        .first()
    )
    if platform is None:
        return None
    now = timezone.now()
    rows = PlatformSecret.objects.filter(platform_id=platform.pk).values_list(
        "ciphertext", "retired_at", "valid_until"
    )
    return PlatformSnapshot(
        platform_id=platform.pk,
        space_slug=platform.space.slug,
        kind=platform.kind,
        enforced=platform.enforced,
        secrets=tuple(
            SecretSnapshot(ciphertext, None if retired is None else until.timestamp())
            for ciphertext, retired, until in rows
            if retired is None or (until is not None and until > now)
        ),
    )


def lookup_platform(api_key: str) -> PlatformSnapshot:
    """The platform behind a public API key, from the shared cache when warm.

    A cache that is down is logged and skipped: the database answers instead.
    """
    # NUL never occurs in a key, and PostgreSQL would refuse it in the query (a 503).
    if not isinstance(api_key, str) or not api_key or len(api_key) > 128 or "\x00" in api_key:
        raise InvalidApiKey("missing or unknown API key (send it in the X-Api-Key header)")
    key = _cache_key(api_key)
    snapshot = near_cache.get(key)
    if snapshot is not None:
        return snapshot
    generation = near_cache.generation()
    cache = _cache()
    try:
        snapshot = cache.get(key)
    except Exception:
        logger.warning("Trusted Identity cache unavailable on read; using the database")
        snapshot = None
        cache = None
    if snapshot is None:
        snapshot = _load_snapshot(api_key)
        if snapshot is None:
            raise InvalidApiKey("missing or unknown API key (send it in the X-Api-Key header)")
        if cache is not None:
            try:
                cache.set(key, snapshot, app_settings.LOOKUP_CACHE_TIMEOUT)
            except Exception:
                logger.warning("Trusted Identity cache unavailable on write")
    if cache is not None:
        near_cache.put(key, snapshot, generation)
    return snapshot


def invalidate_platform(api_key: str) -> None:
    invalidate_platforms([api_key])


def invalidate_platforms(api_keys: Sequence[str]) -> None:
    """Drop platforms from the shared cache, then from every process's near cache."""
    keys = [_cache_key(api_key) for api_key in api_keys]
    try:
        _cache().delete_many(keys)
    except Exception:
        logger.warning("Trusted Identity cache unavailable: could not invalidate platforms")
    near_cache.publish(keys)


def _invalidate_on_commit(api_key: str) -> None:
    transaction.on_commit(lambda: invalidate_platform(api_key))


KeyEntry = tuple[HmacKey, float | None]  # (prepared HMAC key, grace end or None)


@lru_cache(maxsize=4096)
def _key_entries(
    ring: KeyRing, platform_id: int, secrets: tuple[SecretSnapshot, ...]
) -> tuple[KeyEntry, ...]:
    """Decrypt a platform's secrets once per process and key ring.

    Keyed by the ciphertexts themselves, so a rotation (new ciphertexts) is a new
    entry. The plaintexts stay in this process's memory; the shared cache only
    ever holds ciphertexts.
    """
    ad = PlatformSecret.associated_data(platform_id)
    return tuple((HmacKey(ring.decrypt(s.ciphertext, ad)), s.expires_at) for s in secrets)


def _keys(snapshot: PlatformSnapshot) -> tuple[KeyEntry, ...]:
    try:
        return _key_entries(get_key_ring(), snapshot.platform_id, snapshot.secrets)
    except DecryptionError as exc:
        logger.error("Cannot decrypt a secret of platform #%s: %s", snapshot.platform_id, exc)
        raise ServiceUnavailable(
            "this platform's secrets can't be read right now; the operator has been told"
        ) from None


def clear_plaintext_cache() -> None:
    _key_entries.cache_clear()


# ------------------------------------------------------------- signing, sessions


def sign_user_id(snapshot: PlatformSnapshot, user_id: str) -> str:
    """The signature of ``user_id`` with the platform's current secret."""
    for key, expires_at in _keys(snapshot):
        if expires_at is None:
            return sign(key, user_id)
    raise ServiceUnavailable(f"platform #{snapshot.platform_id} has no current secret")


def sign_for(space_slug: str, kind: str, user_id: str) -> str:
    platform = get_platform(space_slug, kind)
    return sign_user_id(lookup_platform(platform.api_key), user_id)


def verify_user_id(snapshot: PlatformSnapshot, user_id: str, signature: str) -> bool:
    """Whether ``signature`` is valid for ``user_id`` under any still-valid secret.

    The hot path of session start: grace ends are compared as Unix times and
    keys come from the per-process decryption memo, so a warm call costs about
    what a hand-written ``hmac`` check does (``make bench``, key ``verify_ratio``).
    """
    now = time.time()
    valid = [key for key, expires_at in _keys(snapshot) if expires_at is None or expires_at > now]
    return verify(valid, user_id, signature)


@dataclass(frozen=True)
class SessionStart:
    session_id: str
    user_id: str | None
    signature: str  # valid | invalid | missing | none
    space: str
    platform: str

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def trusted(self) -> bool:
        return self.signature == "valid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "anonymous": self.anonymous,
            "userId": self.user_id,
            "trusted": self.trusted,
            "signature": self.signature,
            "space": self.space,
            "platform": self.platform,
        }


def parse_session_request(payload: Any) -> tuple[str | None, str | None]:
    """``(user_id, signed)`` from a decoded session-start body, or InvalidRequest.

    ``null`` counts as absent; an empty ``signed`` counts as missing; an empty
    ``userId`` is an error (a visitor sends no ``userId`` at all).
    """
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    user_id = payload.get("userId")
    signed = payload.get("signed")
    fields = payload.get("fields")
    if fields is not None and not isinstance(fields, dict):
        raise InvalidRequest("fields must be a JSON object")
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidRequest("userId must be a string")
    if signed is not None and not isinstance(signed, str):
        raise InvalidRequest("signed must be a string")
    if user_id == "":
        raise InvalidRequest("userId must not be empty (send no userId for a visitor)")
    if user_id is not None and len(user_id) > app_settings.MAX_USER_ID_LENGTH:
        raise InvalidRequest(f"userId is longer than {app_settings.MAX_USER_ID_LENGTH} characters")
    if user_id is not None and not _is_encodable(user_id):
        raise InvalidRequest("userId is not valid Unicode (lone surrogate)")
    if signed is not None and user_id is None:
        raise InvalidRequest("signed was sent without userId")
    if signed == "":
        signed = None
    if signed is not None and len(signed) > 256:
        raise InvalidRequest("signed is too long to be a signature")
    return user_id, signed


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def start_session(snapshot: PlatformSnapshot, payload: Any) -> SessionStart:
    """Verify the signature, decide, count, answer, for a platform from ``lookup_platform``.

    Raises InvalidRequest, SignatureRequired or SignatureInvalid; every decided
    start is counted once by its outcome (``rejected`` for a start that
    enforcement refused).
    """
    user_id, signed = parse_session_request(payload)
    if user_id is None:
        signature, outcome = "none", Outcome.VISITOR
    elif signed is None:
        signature, outcome = "missing", Outcome.MISSING
    elif verify_user_id(snapshot, user_id, signed):
        signature, outcome = "valid", Outcome.VALID
    else:
        signature, outcome = "invalid", Outcome.INVALID

    if snapshot.enforced and signature in ("missing", "invalid"):
        record_outcome(snapshot.platform_id, Outcome.REJECTED)
        if signature == "missing":
            raise SignatureRequired(
                "Trusted Identity is enforced for this platform: send `signed` with the userId"
            )
        raise SignatureInvalid("the signature does not match the userId for this platform")

    record_outcome(snapshot.platform_id, outcome)
    return SessionStart(
        session_id=secrets.token_urlsafe(18),
        user_id=user_id,
        signature=signature,
        space=snapshot.space_slug,
        platform=snapshot.kind,
    )


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def record_outcome(
    platform_id: int, outcome: str, count: int = 1, at: datetime | None = None
) -> None:
    """Count session starts of a platform by outcome, in the hour they happened (UTC).

    Buffered per process and written as atomic increments (see ``outcomes``), so
    concurrent writers never lose counts and a start never waits for a commit.
    """
    outcomes.count(platform_id, _hour_start(at or timezone.now()), outcome, count)


# ------------------------------------------------------------------------ rekey


@dataclass
class RekeyResult:
    total: int = 0
    rekeyed: int = 0
    failed: list[tuple[int, int, str]] = field(default_factory=list)  # (row, platform, reason)


def _replace_ciphertexts(changes: list[tuple[str, int, str]]) -> None:
    """``(new, pk, old)``: set each row's ciphertext, only where it is still ``old``.

    One parameterised UPDATE run with ``executemany`` (pipelined by psycopg 3);
    Django's ``bulk_update`` builds a CASE expression per row and costs more in
    Python than the database spends on the whole batch. The ``old`` condition
    leaves a row alone if something else re-encrypted it meanwhile.
    """
    connection = connections[router.db_for_write(PlatformSecret)]
    table = connection.ops.quote_name(PlatformSecret._meta.db_table)
    column = connection.ops.quote_name("ciphertext")
    key = connection.ops.quote_name(PlatformSecret._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {column} = %s WHERE {key} = %s AND {column} = %s",  # noqa: S608
            changes,
        )


def rekey(batch_size: int = 500) -> RekeyResult:
    """Re-encrypt every secret not under the first key, in batches.

    Idempotent and resumable: rows already under the first key are skipped, and
    each batch commits on its own. Rows that can't be decrypted are reported,
    never changed.
    """
    ring = get_key_ring()
    primary = ring.primary_key_id
    result = RekeyResult()
    last_pk = 0
    while True:
        batch = list(
            PlatformSecret.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "platform_id", "ciphertext")[:batch_size]
        )
        if not batch:
            break
        last_pk = batch[-1][0]
        result.total += len(batch)
        stale = []
        for pk, platform_id, ciphertext in batch:
            try:
                if ring.key_id_of(ciphertext) == primary:
                    continue
                ad = PlatformSecret.associated_data(platform_id)
                token = ring.encrypt(ring.decrypt(ciphertext, ad), ad)
                stale.append((pk, platform_id, ciphertext, token))
            except DecryptionError as exc:
                result.failed.append((pk, platform_id, str(exc)))
        if stale:
            with transaction.atomic():
                _replace_ciphertexts([(token, pk, old) for pk, _, old, token in stale])
                api_keys = list(
                    Platform.objects.filter(
                        pk__in={platform_id for _, platform_id, _, _ in stale}
                    ).values_list("api_key", flat=True)
                )
                transaction.on_commit(lambda keys=api_keys: invalidate_platforms(keys))
            result.rekeyed += len(stale)
    return result


__all__ = [
    "Actor",
    "Figures",
    "NotReady",
    "TrustedIdentityError",
]
