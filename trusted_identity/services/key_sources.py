"""What a platform verifies with (CONTRACT section 10): its secret, its public keys, or
both while clients move, and the staged move between them.

- ``secret`` (the default): the secret's forms (sections 1 and 9, as
  ``signature_forms`` says). A public-key token its keys would verify is
  ``form_not_allowed``: keys can be added and signers deployed before it counts.
- ``both``: the secret's forms and public-key tokens. Needs a public key that
  verifies.
- ``public-key``: public-key tokens only. Going there follows the readiness rule of
  enforcement, over the share of valid identified users whose starts used a public-key
  token (:func:`key_readiness`, from the ``form:public-key`` distinct-user sketches),
  with the override and its reason; then, in the same transaction, the platform's
  secrets are **deleted** (audited): nothing stored here can sign for it, no reveal,
  no rotation. Leaving it makes a new secret (the old ones are gone).

Every change is audited with a ``PolicyChange`` record (``key_source``) and bumps the
verification generation in its transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from ..conf import app_settings
from ..dbclock import database_now
from ..exceptions import InvalidRequest, MissingOverrideReason, TrustedIdentityError
from ..formatting import percent
from ..models import (
    AuditEvent,
    KeySource,
    Platform,
    PlatformSecret,
    PolicyChange,
    PolicySetting,
)
from .access import Actor, authorize
from .audit import audit, last_policy_changes, record_policy_change
from .figures import NOT_ENOUGH_STARTS, READY, form_users
from .lookup import verification_changed
from .platform_secrets import create_secrets
from .public_keys import has_public_keys
from .signature_forms import token_readiness
from .verification import PUBLIC_KEY

SECRET = KeySource.SECRET.value
BOTH = KeySource.BOTH.value
PUBLIC_KEY_ONLY = KeySource.PUBLIC_KEY.value
SOURCES = (SECRET, BOTH, PUBLIC_KEY_ONLY)


@dataclass(frozen=True)
class KeyUsage:
    """Distinct valid identified users of the readiness window, and how many of them had
    a valid start signed with a public key."""

    valid: int
    public_key: int

    @property
    def share(self) -> float | None:
        return self.public_key / self.valid if self.valid else None

    @property
    def readiness(self) -> str:
        """The rule of ``token`` (``signature_forms.token_readiness``) over these users:
        too few users to tell, else ready at or above ``READINESS_THRESHOLD``."""
        return token_readiness(self.valid, self.public_key)


def key_readiness(platform: Platform) -> KeyUsage:
    """The platform's :class:`KeyUsage` over the readiness window (``figures.form_users``)."""
    return KeyUsage(*form_users(platform.pk, PUBLIC_KEY))


class KeysNotReady(TrustedIdentityError):
    """``public-key`` refused: not enough of the valid users signed with a public key."""

    code = "not_ready"
    status = 409

    def __init__(self, message: str, usage: KeyUsage) -> None:
        super().__init__(message)
        self.usage = usage


def _not_ready_message(usage: KeyUsage) -> str:
    if usage.readiness == NOT_ENOUGH_STARTS:
        return (
            f"not enough starts to tell: {usage.valid} valid identified users in the "
            f"readiness window, at least {app_settings.READINESS_MIN_STARTS} are needed; "
            "override explicitly to accept public-key tokens only anyway"
        )
    return (
        f"public keys are not rolled out: {usage.public_key} of {usage.valid} valid "
        f"identified users ({percent(usage.share)}) signed with a public key, below the "
        f"{percent(app_settings.READINESS_THRESHOLD)} threshold; override explicitly to "
        "accept public-key tokens only anyway"
    )


def set_key_source(
    platform: Platform,
    source: str,
    actor: Actor,
    *,
    force: bool = False,
    reason: str = "",
) -> Platform:
    """Set what the platform verifies with. Needs the ``enforce`` permission.

    ``both`` and ``public-key`` need a public key that verifies. ``public-key`` is
    refused with :class:`KeysNotReady` unless the readiness rule says ready, or
    ``force`` is given with a ``reason`` (kept verbatim in the ``PolicyChange``); its
    secrets are then deleted in the same transaction. Leaving ``public-key`` makes a
    new current secret. Nothing changed, nothing written.
    """
    authorize(actor, "enforce", platform.space_id)
    if source not in SOURCES:
        raise InvalidRequest(f"unknown key source {source!r}: use secret, both or public-key")
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = (
            Platform.objects.select_related("space")
            .select_for_update(of=("self",))
            .get(pk=platform.pk)
        )
        old = locked.key_source
        if old == source:
            return locked
        if source != SECRET and not has_public_keys(locked):
            raise InvalidRequest(
                f"{locked} has no public key that verifies: add one first (add-public-key), "
                "or set a JWKS URL (jwks-url)"
            )
        messages = [f"Key source: {old} -> {source}."]
        usage, override = None, ""
        if source == PUBLIC_KEY_ONLY:
            usage = key_readiness(locked)
            if usage.readiness != READY:
                if not force:
                    raise KeysNotReady(_not_ready_message(usage), usage)
                if not reason:
                    raise MissingOverrideReason("overriding the readiness rule needs a reason")
                messages.append(f"Readiness rule overridden; override reason: {reason}")
                override = reason
        record_policy_change(
            actor,
            locked,
            PolicySetting.KEY_SOURCE,
            old,
            source,
            override_reason=override,
            readiness=usage.readiness if usage else "",
            readiness_count=usage.valid if usage else None,
            readiness_share=usage.share if usage else None,
        )
        locked.key_source = source
        locked.save(update_fields=["key_source"])
        if old == PUBLIC_KEY_ONLY:
            create_secrets([locked], database_now())
            messages.append("Made a new current secret: its earlier secrets were deleted.")
        audit(actor, locked, " ".join(messages), action="key_source")
        if source == PUBLIC_KEY_ONLY:
            _delete_secrets(locked, actor)
        verification_changed()
    return locked


#: The audit action of the deletion of a platform's secrets (going public-key only).
DELETE_SECRETS = "delete_secrets"


def _delete_secrets(platform: Platform, actor: Actor) -> None:
    """Delete every secret of a platform gone public-key-only, audited: nothing stored
    here can sign for it any more."""
    deleted, _ = PlatformSecret.objects.filter(platform_id=platform.pk).delete()
    audit(
        actor,
        platform,
        f"Deleted the platform's {deleted} secret{'s' if deleted != 1 else ''}: it verifies "
        "public keys only, so nothing stored here can sign for it.",
        action=DELETE_SECRETS,
    )


def last_key_source_changes(platform_ids: Sequence[int]) -> dict[int, PolicyChange]:
    """Per platform (when it ever changed), the latest change of its key source. One query."""
    return last_policy_changes(platform_ids, [PolicySetting.KEY_SOURCE])


def secrets_deletions(platform_ids: Sequence[int]) -> dict[int, AuditEvent]:
    """Per platform (whose secrets were ever deleted), the audit event of the latest
    deletion: when, by whom and through which door, as the page says why there is no
    secret. One query (a platform has one such event per move to public keys)."""
    found: dict[int, AuditEvent] = {}
    events = AuditEvent.objects.filter(platform_id__in=platform_ids, action=DELETE_SECRETS)
    for event in events.order_by("-at", "-id"):
        found.setdefault(event.platform_id, event)
    return found
