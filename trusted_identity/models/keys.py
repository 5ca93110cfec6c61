"""The public keys of public-key platforms (CONTRACT section 10).

A key is public: stored as its DER SubjectPublicKeyInfo, never encrypted, and
nothing private is ever stored here (``publickeys`` refuses a private key before a
row is made). ``services.public_keys`` adds, expires and removes them (at most
``MAX_ACTIVE`` active per platform), audited; session start reads them through the
platform's cached snapshot (``services.lookup``). A platform's JWKS URL and the keys
last fetched from it are a ``JwksSource`` (``services.jwks``).
"""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .core import Platform


class KeyAlgorithm(models.TextChoices):
    """The algorithm a key verifies, given by its type (``publickeys``)."""

    ES256 = "ES256", _("ES256 (EC P-256)")
    EDDSA = "EdDSA", _("EdDSA (Ed25519)")
    RS256 = "RS256", _("RS256 (RSA)")


class PublicKeyQuerySet(models.QuerySet):
    """Keys by their state at ``at`` (default now): ``active`` ones verify, ``expired`` ones
    are kept (never accepted) so that a token naming one is told ``key_expired``."""

    @staticmethod
    def active_q(at: datetime) -> Q:
        return Q(expires_at__isnull=True) | Q(expires_at__gt=at)

    def active(self, at: datetime | None = None) -> PublicKeyQuerySet:
        return self.filter(self.active_q(at or timezone.now()))

    def expired(self, at: datetime | None = None) -> PublicKeyQuerySet:
        return self.exclude(self.active_q(at or timezone.now()))


class PublicKey(models.Model):
    """One public key of a platform, named by its ``kid`` (given, or its RFC 7638
    thumbprint), with an optional expiry (strictly: at ``expires_at`` it no longer
    verifies) and who added it when."""

    #: Keys that verify at once, per platform (Braze's number: room for one rotation).
    MAX_ACTIVE = 3
    #: Keys kept per platform, expired ones included: remove one to add more.
    MAX_STORED = 10

    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="public_keys", verbose_name=_("platform")
    )
    kid = models.CharField(_("key id (kid)"), max_length=128)
    alg = models.CharField(_("algorithm"), max_length=8, choices=KeyAlgorithm.choices)
    spki = models.BinaryField(_("public key (DER SubjectPublicKeyInfo)"))
    thumbprint = models.CharField(_("RFC 7638 thumbprint"), max_length=43)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    added_at = models.DateTimeField(_("added"), default=timezone.now, editable=False)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("added by"),
    )
    added_by_name = models.CharField(_("added by (name)"), max_length=150, blank=True)
    # When it last verified a session start (written by the flush, ``countwrites``).
    last_verified_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = PublicKeyQuerySet.as_manager()

    class Meta:
        ordering = ["platform_id", "added_at", "id"]
        verbose_name = _("public key")
        verbose_name_plural = _("public keys")
        constraints = [
            models.UniqueConstraint(fields=["platform", "kid"], name="ti_one_key_per_kid"),
            models.UniqueConstraint(
                fields=["platform", "thumbprint"], name="ti_one_row_per_public_key"
            ),
            models.CheckConstraint(
                condition=Q(alg__in=KeyAlgorithm.values), name="ti_public_key_alg_known"
            ),
        ]

    def __str__(self) -> str:
        return f"public key {self.kid} of platform #{self.platform_id}"

    def is_active(self, at: datetime | None = None) -> bool:
        return self.expires_at is None or self.expires_at > (at or timezone.now())


class JwksSource(models.Model):
    """A platform's JWKS URL and what its last fetches found (CONTRACT section 10).

    ``keys`` is the last good set's usable keys, public (``[{"kid", "alg", "spki"}]``,
    the DER SubjectPublicKeyInfo in base64): never empty, since a URL is only set once
    it answered with a usable set, and a later fetch that fails (or finds none) leaves
    it as it was. ``attempted_at`` is the last fetch tried, the once-a-minute claim
    every process compares and sets (``services.jwks``); ``error`` the last attempt's
    failure in a few words of ours (``""`` once one succeeds), never the answer's body.
    """

    #: Usable keys a set may hold (stored keys are limited to ``PublicKey.MAX_ACTIVE``).
    MAX_KEYS = 10

    platform = models.OneToOneField(
        Platform,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="jwks",
        verbose_name=_("platform"),
    )
    url = models.CharField(_("JWKS URL"), max_length=2048)
    # JSON text (a JSONField's system check would need the database to run).
    keys_json = models.TextField(_("keys of the last good set"), default="[]", blank=True)
    skipped_json = models.TextField(_("entries left out of that set"), default="[]", blank=True)
    fetched_at = models.DateTimeField(_("last good set fetched"), null=True, blank=True)
    attempted_at = models.DateTimeField(_("last fetch tried"), null=True, blank=True)
    error = models.CharField(_("last fetch's error"), max_length=300, blank=True)
    set_at = models.DateTimeField(_("URL set"), default=timezone.now, editable=False)
    set_by_name = models.CharField(_("URL set by (name)"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("JWKS URL")
        verbose_name_plural = _("JWKS URLs")

    def __str__(self) -> str:
        return f"JWKS URL of platform #{self.platform_id}"

    @property
    def keys(self) -> list[dict[str, str]]:
        """The last good set's keys: ``[{"kid", "alg", "spki"}]``."""
        return json.loads(self.keys_json or "[]")

    @keys.setter
    def keys(self, value: list[dict[str, str]]) -> None:
        self.keys_json = json.dumps(value, separators=(",", ":"))

    @property
    def skipped(self) -> list[str]:
        """A note per entry the last good set's fetch left out."""
        return json.loads(self.skipped_json or "[]")

    @skipped.setter
    def skipped(self, value: list[str]) -> None:
        self.skipped_json = json.dumps(value)
