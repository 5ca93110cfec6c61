"""Spaces, their platforms, encrypted platform secrets, memberships, and the rows
that verification and the admin read (the verification generation, staff grants).

Business operations on these live in ``services/``; the models hold data,
constraints and the small helpers that belong to one row.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import app_settings
from ..keyring import get_key_ring


class PlatformKind(models.TextChoices):
    WEB = "web", _("Web")
    IOS = "ios", _("iOS")
    ANDROID = "android", _("Android")
    TVOS = "tvos", _("tvOS")
    ANDROIDTV = "androidtv", _("Android TV")
    ROKU = "roku", _("Roku")


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    VIEWER = "viewer", _("Viewer")


class SignatureForm(models.TextChoices):
    """Which forms of ``signed`` a platform accepts (CONTRACT section 9)."""

    PLAIN = "plain", _("Plain signatures only")
    EITHER = "either", _("Plain signatures or tokens")
    TOKEN = "token", _("Tokens only")


class KeySource(models.TextChoices):
    """What a platform verifies tokens with (CONTRACT section 10): its secret (the forms of
    sections 1 and 9), its public keys (public-key tokens), or both while clients move."""

    SECRET = "secret", _("The secret")
    BOTH = "both", _("The secret or public keys")
    PUBLIC_KEY = "public-key", _("Public keys only")


class Outcome(models.TextChoices):
    VALID = "valid", _("Valid signature")
    INVALID = "invalid", _("Invalid signature")
    MISSING = "missing", _("Missing signature")
    VISITOR = "visitor", _("Visitor")
    REJECTED = "rejected", _("Rejected")


class Space(models.Model):
    """A customer's workspace: the unit of tenancy."""

    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        through="SpaceMembership",
        related_name="trusted_identity_spaces",
        blank=True,
    )

    class Meta:
        ordering = ["slug"]
        verbose_name = _("space")
        verbose_name_plural = _("spaces")

    def __str__(self) -> str:
        return self.name or self.slug


class SpaceMembership(models.Model):
    """A user's role in a space: owner and admin may reveal, rotate and toggle."""

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="trusted_identity_memberships",
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["space_id", "user_id"]
        verbose_name = _("space membership")
        verbose_name_plural = _("space memberships")
        constraints = [
            models.UniqueConstraint(fields=["space", "user"], name="ti_one_membership_per_user"),
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="ti_membership_role_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}) in {self.space}"


class Platform(models.Model):
    """One kind of client app (web, ios, ...) of a space, with its public API key."""

    DEFAULT_TOKEN_MAX_AGE = 24 * 3600

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="platforms")
    kind = models.CharField(_("kind"), max_length=16, choices=PlatformKind.choices)
    api_key = models.CharField(
        _("API key"),
        max_length=64,
        unique=True,
        editable=False,
        help_text=_("Public: client SDKs are built with it. Not a secret."),
    )
    enforced = models.BooleanField(
        _("Trusted Identity enforced"),
        default=False,
        help_text=_("Reject identified session starts without a valid signature."),
    )
    enforcement_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    signature_form = models.CharField(
        _("signature form"),
        max_length=8,
        choices=SignatureForm.choices,
        default=SignatureForm.PLAIN,
        editable=False,
        help_text=_("Which forms of signature session starts may carry."),
    )
    token_max_age = models.PositiveIntegerField(
        _("maximum token age (seconds)"),
        default=DEFAULT_TOKEN_MAX_AGE,
        editable=False,
        help_text=_("The longest lifetime (exp - iat) a token may have."),
    )
    key_source = models.CharField(
        _("key source"),
        max_length=16,
        choices=KeySource.choices,
        default=KeySource.SECRET,
        editable=False,
        help_text=_("What verifies signatures: the secret, public keys, or both."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        ordering = ["space_id", "kind"]
        verbose_name = _("platform")
        verbose_name_plural = _("platforms")
        constraints = [
            models.UniqueConstraint(fields=["space", "kind"], name="ti_one_platform_per_kind"),
            models.CheckConstraint(
                condition=Q(kind__in=PlatformKind.values), name="ti_platform_kind_known"
            ),
            models.CheckConstraint(
                condition=Q(signature_form__in=SignatureForm.values),
                name="ti_platform_signature_form_known",
            ),
            models.CheckConstraint(
                condition=Q(token_max_age__gte=60, token_max_age__lte=7 * 86400),
                name="ti_platform_token_max_age_bounded",
            ),
            models.CheckConstraint(
                condition=Q(key_source__in=KeySource.values), name="ti_platform_key_source_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.space.slug}/{self.kind}"


class AllowedOrigin(models.Model):
    """An origin (``https://app.example.com``) whose pages may start sessions of a web
    platform from the browser (CORS). Stored normalised; managed by ``services.origins``.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="allowed_origins")
    origin = models.CharField(_("origin"), max_length=300)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["platform_id", "origin"]
        verbose_name = _("allowed origin")
        verbose_name_plural = _("allowed origins")
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "origin"], name="ti_one_origin_per_platform"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.origin} for platform #{self.platform_id}"


class SecretState(models.TextChoices):
    """Where a secret stands at a moment: every row is in exactly one of these.

    ``retired_at`` empty makes the current secret; a retired one verifies while its
    ``valid_until`` (the end of its grace) is after the moment; once it is not, the
    secret is kept, encrypted and never accepted, for ``EXPIRED_SECRET_RETENTION``, so
    that a start signed with it is counted as ``expired_secret`` (CONTRACT section 8);
    after that (or a retired row without an end) it is past its retention: rotations and
    ``prune`` delete it. :class:`PlatformSecretQuerySet` (SQL) and
    :meth:`PlatformSecret.state_at` (one row) are the two spellings of this rule.
    """

    CURRENT = "current", _("Current")
    PREVIOUS = "previous", _("Previous, in its grace")
    EXPIRED = "expired", _("Expired, kept for diagnosis")
    PAST_RETENTION = "past_retention", _("Expired, past its retention")


def expired_kept_since(at: datetime | None = None) -> datetime:
    """Secrets whose grace ended after this moment (and by ``at``) are kept for diagnosis;
    those that ended at it or before are past their retention."""
    return (at or timezone.now()) - app_settings.EXPIRED_SECRET_RETENTION


class PlatformSecretQuerySet(models.QuerySet):
    """The secrets in each :class:`SecretState`, at ``at`` (default: now).

    Each state's condition is written once, in the ``_q`` methods below; the filters
    and :meth:`with_state` are made of them. ``valid_until`` is compared strictly: at
    the exact end of its grace a secret no longer verifies (``revoke_previous`` sets it
    to now), and a secret whose grace ended exactly ``EXPIRED_SECRET_RETENTION`` ago is
    past its retention.
    """

    @staticmethod
    def current_q() -> Q:
        """The current secret: not retired (one per platform, by a constraint)."""
        return Q(retired_at__isnull=True)

    @staticmethod
    def previous_in_grace_q(at: datetime) -> Q:
        """Retired, and its grace ends after ``at``: it still verifies."""
        return Q(retired_at__isnull=False, valid_until__gt=at)

    @staticmethod
    def kept_expired_q(at: datetime) -> Q:
        """Retired, its grace ended at ``at`` or before, but after ``expired_kept_since``."""
        return Q(
            retired_at__isnull=False,
            valid_until__lte=at,
            valid_until__gt=expired_kept_since(at),
        )

    @staticmethod
    def past_retention_q(at: datetime) -> Q:
        """Retired, and its grace ended at ``expired_kept_since(at)`` or before (or it has
        no end): nothing keeps it."""
        return Q(retired_at__isnull=False) & (
            Q(valid_until__isnull=True) | Q(valid_until__lte=expired_kept_since(at))
        )

    def current(self) -> PlatformSecretQuerySet:
        return self.filter(self.current_q())

    def previous_in_grace(self, at: datetime | None = None) -> PlatformSecretQuerySet:
        return self.filter(self.previous_in_grace_q(at or timezone.now()))

    def verifying(self, at: datetime | None = None) -> PlatformSecretQuerySet:
        """The secrets a session start accepts at ``at``: current, or previous in grace."""
        return self.filter(self.current_q() | self.previous_in_grace_q(at or timezone.now()))

    def kept_expired(self, at: datetime | None = None) -> PlatformSecretQuerySet:
        """Expired secrets kept, never accepted, to recognise ``expired_secret``."""
        return self.filter(self.kept_expired_q(at or timezone.now()))

    def past_retention(self, at: datetime | None = None) -> PlatformSecretQuerySet:
        """Secrets to delete: their grace ended ``EXPIRED_SECRET_RETENTION`` ago or more."""
        return self.filter(self.past_retention_q(at or timezone.now()))

    def with_state(self, at: datetime | None = None) -> PlatformSecretQuerySet:
        """Each row annotated with its :class:`SecretState` at ``at``, as ``state``."""
        at = at or timezone.now()
        return self.annotate(
            state=Case(
                When(self.current_q(), then=Value(SecretState.CURRENT)),
                When(self.previous_in_grace_q(at), then=Value(SecretState.PREVIOUS)),
                When(self.kept_expired_q(at), then=Value(SecretState.EXPIRED)),
                default=Value(SecretState.PAST_RETENTION),
                output_field=models.CharField(max_length=16),
            )
        )


class PlatformSecret(models.Model):
    """A platform's signing secret, encrypted at rest and bound to its platform and row.

    ``retired_at`` is empty for the one current secret; a retired secret keeps
    verifying until ``valid_until``, then is kept for diagnosis (:class:`SecretState`).
    The plaintext is only reachable through ``get_secret()``: no field, form or
    ``repr`` carries it.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="secrets")
    ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    retired_at = models.DateTimeField(null=True, blank=True, editable=False)
    valid_until = models.DateTimeField(null=True, blank=True, editable=False)
    # When this secret last verified a session start (to the flush; for "secret usage").
    last_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # What it verified since ``retired_at`` (written by the flush, ``countwrites``): the
    # starts, and their distinct users as a sketch (``sketch.DistinctSketch``), to tell
    # whether the grace may end ("may I end the old secret's grace now?").
    starts_since_retired = models.PositiveBigIntegerField(default=0, editable=False)
    users_since_retired = models.BinaryField(default=b"", editable=False)

    objects = PlatformSecretQuerySet.as_manager()

    class Meta:
        ordering = ["platform_id", "-created_at"]
        verbose_name = _("platform secret")
        verbose_name_plural = _("platform secrets")
        constraints = [
            models.UniqueConstraint(
                fields=["platform"],
                condition=Q(retired_at__isnull=True),
                name="ti_one_current_secret_per_platform",
            ),
        ]
        indexes = [models.Index(fields=["platform", "valid_until"], name="ti_secret_validity")]

    def __str__(self) -> str:
        state = "current" if self.is_current else f"retired, valid until {self.valid_until}"
        return f"secret #{self.pk} of platform #{self.platform_id} ({state})"

    def __repr__(self) -> str:
        return f"<PlatformSecret pk={self.pk} platform_id={self.platform_id}>"

    @staticmethod
    def associated_data(platform_id: int, secret_id: int) -> bytes:
        """What a ciphertext is bound to: this table, the platform and the row itself.

        A ciphertext copied into another platform's row, or into another row of the
        same platform (a revoked secret over the current one), no longer decrypts.
        """
        return f"trusted_identity.platformsecret:platform={platform_id}:row={secret_id}".encode()

    def _bound_data(self) -> bytes:
        if self.pk is None:
            raise ValueError("a secret is encrypted for its row: save the row first")
        return self.associated_data(self.platform_id, self.pk)

    def set_secret(self, plaintext: str) -> None:
        self.ciphertext = get_key_ring().encrypt(plaintext, self._bound_data())

    def get_secret(self) -> str:
        return get_key_ring().decrypt(self.ciphertext, self._bound_data())

    @property
    def is_current(self) -> bool:
        return self.retired_at is None

    def state_at(self, at: datetime | None = None) -> SecretState:
        """This row's :class:`SecretState` at ``at``: what :meth:`PlatformSecretQuerySet.with_state`
        computes in SQL, for a row in hand."""
        at = at or timezone.now()
        if self.is_current:
            return SecretState.CURRENT
        if self.valid_until is not None and self.valid_until > at:
            return SecretState.PREVIOUS
        if self.valid_until is not None and self.valid_until > expired_kept_since(at):
            return SecretState.EXPIRED
        return SecretState.PAST_RETENTION

    def verifies_at(self, at: datetime | None = None) -> bool:
        """Whether a session start at ``at`` accepts this secret (current, or in grace)."""
        return self.state_at(at) in (SecretState.CURRENT, SecretState.PREVIOUS)


class VerificationGeneration(models.Model):
    """One row whose number goes up with every change that alters verification.

    Rotations, revocations, enforcement changes, deletions and rekeys bump it in
    their own transaction, so it can't be lost the way a cache message can. Every
    serving process reads it at most every ``LOOKUP_CHECK_INTERVAL`` seconds and
    keys its cached platform lookups by it: a change reaches every process, in any
    cache set-up, within that interval of its commit.

    Each bump also writes a new random ``token``: the shared cache's keys carry it, so
    two databases at the same number (sharing one cache) never read each other's
    entries, and a database restored from a backup, which counts on from an older
    number, never meets entries of the state it lost.
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    value = models.BigIntegerField(default=0)
    token = models.CharField(max_length=32, default="")

    class Meta:
        verbose_name = _("verification generation")
        verbose_name_plural = _("verification generation")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="ti_one_verification_generation"),
        ]

    def __str__(self) -> str:
        return f"verification generation {self.value}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(16)


class StaffGrant(models.Model):
    """That ``grant`` made this user staff: what revoking their last membership takes back.

    ``grant`` writes one only when the user was not staff before; a user who already
    was has none, and no change of membership ever takes their staff status away.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="trusted_identity_staff_grant",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("staff status given by a grant")
        verbose_name_plural = _("staff statuses given by grants")

    def __str__(self) -> str:
        return f"staff status of user #{self.user_id}, given by a grant"
