"""What people did, as rows rather than prose: ``AuditEvent`` (every audited action,
whoever did it and through whichever door) and ``PolicyChange`` (each change of a
platform's gated settings, with the figures the readiness rule saw).

Two siblings rather than one table. An audit event is the trail of *who did what*:
reveals, rotations, grants, origins, toggles, all alike, one short message each. A
policy change is the history of *a setting's values*: which setting, from what to
what, whether the readiness rule was overridden and why, with the rule's figures,
read back by the settings page as "the latest change per platform and setting". Put
in one table, every reveal would carry a dozen empty policy columns and the page's
index would cover a table mostly of reveals; kept apart, each has only the columns
it means and its own index, and both share how the actor is recorded
(:class:`ActorFields`). A policy change also writes its audit event (the service
does both in the change's transaction), so the trail stays complete on its own.

The actor is a nullable foreign key to the user model with ``SET_NULL`` *and* the
name shown at the time: a deleted user, or the command line (which has no user row),
still reads well.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .core import Platform, Space


class Door(models.TextChoices):
    """Through which door an action came in (``services.access.Actor.channel``)."""

    ADMIN = "admin", _("Admin")
    CLI = "cli", _("Command line")
    CODE = "code", _("Code")


class PolicySetting(models.TextChoices):
    """The platform settings whose changes are recorded as :class:`PolicyChange`."""

    ENFORCEMENT = "enforcement", _("Enforcement")
    SIGNATURE_FORM = "signature_form", _("Signatures accepted")
    TOKEN_MAX_AGE = "token_max_age", _("Maximum token age")
    KEY_SOURCE = "key_source", _("Key source")


class ActorFields(models.Model):
    """When, who (the user if any, and the name shown at the time) and through which door."""

    at = models.DateTimeField(_("at"), default=timezone.now, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    actor_name = models.CharField(_("actor's name"), max_length=150)
    door = models.CharField(_("door"), max_length=8, choices=Door.choices)
    detail = models.CharField(
        _("detail"), max_length=200, blank=True, help_text=_("e.g. the command line's OS user")
    )

    class Meta:
        abstract = True


class AuditEvent(ActorFields):
    """One audited action on one object: the durable, queryable audit trail.

    Written for every audit entry, with or without a user (the admin's ``LogEntry``
    history needs a user, so actions from the command line are found here only).
    ``message`` says what happened and never carries a secret.
    """

    action = models.CharField(_("action"), max_length=32)
    space = models.ForeignKey(
        Space,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("space"),
    )
    platform = models.ForeignKey(
        Platform,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("platform"),
    )
    object_label = models.CharField(_("object type"), max_length=100)
    object_id = models.CharField(_("object id"), max_length=64)
    object_repr = models.CharField(_("object"), max_length=200)
    message = models.TextField(_("message"))

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [models.Index(fields=["space", "-at"], name="ti_audit_space_at")]

    def __str__(self) -> str:
        return f"{self.actor_name}: {self.message}"


class PolicyChange(ActorFields):
    """One change of one gated setting of a platform: old and new value, whether the
    readiness rule was overridden (the reason verbatim) and the figures it saw.

    Values are stored as text in the setting's own terms: ``on``/``off`` for
    enforcement, the form's value, a token age in seconds. The readiness figures are
    those of the rule that gated the change (distinct identified users and their
    valid share for enforcement; valid starts and their token share for
    ``signature_form``), null where no rule applied.
    """

    platform = models.ForeignKey(
        Platform,
        on_delete=models.CASCADE,
        related_name="policy_changes",
        verbose_name=_("platform"),
    )
    setting = models.CharField(_("setting"), max_length=32, choices=PolicySetting.choices)
    old_value = models.CharField(_("old value"), max_length=200, blank=True)
    new_value = models.CharField(_("new value"), max_length=200)
    overridden = models.BooleanField(_("readiness overridden"), default=False)
    override_reason = models.TextField(_("override reason"), blank=True)
    readiness = models.CharField(
        _("readiness"), max_length=32, blank=True, help_text=_("the rule's verdict at the time")
    )
    readiness_count = models.PositiveIntegerField(
        _("counted"), null=True, blank=True, help_text=_("what the rule counted")
    )
    readiness_share = models.FloatField(
        _("share"), null=True, blank=True, help_text=_("the share the rule compared")
    )
    imported_from_log = models.BooleanField(
        _("read from an old log entry"),
        default=False,
        editable=False,
        help_text=_(
            "copied by migration 0009 from the prose of an admin log entry written before "
            "changes were recorded: best effort, the reason may be cut short"
        ),
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("policy change")
        verbose_name_plural = _("policy changes")
        indexes = [
            models.Index(fields=["platform", "setting", "-at", "-id"], name="ti_policy_latest")
        ]

    def __str__(self) -> str:
        return f"{self.platform}: {self.setting} {self.old_value} -> {self.new_value}"
