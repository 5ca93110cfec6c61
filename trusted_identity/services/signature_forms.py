"""Which signature forms a platform accepts (CONTRACT section 9), and changing that.

``plain`` (the default: the seed's HMAC only), ``either``, or ``token`` (HS256 tokens
only), with the longest lifetime (``exp - iat``) a token of the platform may have.
The policy is part of the cached :class:`~.lookup.PlatformSnapshot` that session
start reads; :func:`set_signature_form` changes it, audited, bumping the verification
generation in its transaction so that every process honours it within a second.
Turning ``token`` on follows the readiness rule of enforcement, over the share of
valid identified users whose starts used a token (:func:`token_readiness`), with the
same minimum in distinct users, override and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction

from ..conf import app_settings
from ..exceptions import InvalidRequest, MissingOverrideReason, TrustedIdentityError
from ..formatting import percent
from ..models import Platform, PolicyChange, PolicySetting, SignatureForm
from .access import Actor, authorize
from .audit import audit, last_policy_changes, record_policy_change
from .durations import describe_duration, parse_duration
from .figures import NOT_ENOUGH_STARTS, NOT_READY, READY, form_users
from .lookup import verification_changed

PLAIN = SignatureForm.PLAIN.value
EITHER = SignatureForm.EITHER.value
TOKEN = SignatureForm.TOKEN.value
FORMS = (PLAIN, EITHER, TOKEN)
MIN_TOKEN_MAX_AGE = timedelta(minutes=1)
MAX_TOKEN_MAX_AGE = timedelta(days=7)
DEFAULT_TOKEN_MAX_AGE = timedelta(seconds=Platform.DEFAULT_TOKEN_MAX_AGE)


def accepts(policy: str, form: str) -> bool:
    """Whether a platform with this policy accepts a signature of this form (plain, token)."""
    return policy in (EITHER, form)


def check_form_accepted(policy: str, form: str) -> None:
    """An InvalidRequest unless ``form`` (``plain`` or ``token``) is one a platform with this
    policy accepts, in the words of the sign view (``site_signing.sign_in_form``): what the
    template tag says of a form its platform refuses."""
    if form not in (PLAIN, TOKEN):
        raise InvalidRequest(f"form must be plain or token, not {form!r}")
    if not accepts(policy, form):
        wanted = TOKEN if form == PLAIN else PLAIN
        raise InvalidRequest(
            f"this platform accepts only {wanted} signatures: ask with form={wanted}"
        )


def check_max_age(value: timedelta) -> timedelta:
    """A token's maximum age within the bounds (a minute to seven days), or InvalidRequest."""
    if not MIN_TOKEN_MAX_AGE <= value <= MAX_TOKEN_MAX_AGE:
        raise InvalidRequest(
            f"a token's maximum age must be between {describe_duration(MIN_TOKEN_MAX_AGE)} "
            f"and {describe_duration(MAX_TOKEN_MAX_AGE)}, not {describe_duration(value)}"
        )
    return value


def parse_max_age(text: str) -> timedelta:
    """``--max-age`` as typed (``30m``, ``24h``, ``7d``), within the bounds."""
    return check_max_age(parse_duration(text))


# ------------------------------------------------------------------ readiness


def token_readiness(valid: int, token: int) -> str:
    """The readiness rule for ``token``, from the counts of the readiness window.

    ``valid`` is the number of distinct valid identified users, ``token`` how many of
    them had a valid start with a token. Below ``READINESS_MIN_STARTS`` valid users
    nothing can be told; from there, ``ready`` when at least ``READINESS_THRESHOLD`` of
    them used a token (the plain signatures of the others would turn invalid), else
    ``not_ready``. Users, not starts: replaying one token adds one user at most.
    """
    if valid < app_settings.READINESS_MIN_STARTS:
        return NOT_ENOUGH_STARTS
    return READY if token / valid >= app_settings.READINESS_THRESHOLD else NOT_READY


@dataclass(frozen=True)
class TokenUsage:
    """Distinct valid identified users of the readiness window, and how many used a token."""

    valid: int
    token: int

    @property
    def share(self) -> float | None:
        return self.token / self.valid if self.valid else None

    @property
    def readiness(self) -> str:
        return token_readiness(self.valid, self.token)


def token_usage(platform: Platform) -> TokenUsage | None:
    """The platform's :class:`TokenUsage` over the readiness window, in distinct users:
    the valid identified ones and those whose valid starts used a token, from the daily
    distinct-user sketches ``counting`` keeps (``figures.form_users``). None would mean
    the forms can't be told (the rule then needs the override); it never is here."""
    return TokenUsage(*form_users(platform.pk, TOKEN))


def readiness_of(usage: TokenUsage | None) -> str:
    return NOT_ENOUGH_STARTS if usage is None else usage.readiness


def needs_override(current: str, chosen: str, usage: TokenUsage | None) -> bool:
    """Whether moving a platform from ``current`` to ``chosen`` needs the readiness
    override: only a move to ``token`` does, while tokens are not rolled out (``usage``)."""
    return chosen == TOKEN and current != TOKEN and readiness_of(usage) != READY


def default_form(policy: str) -> str:
    """The form to sign with where none was asked for and refusing would break a page
    (the template tag): plain where the policy accepts it, else token."""
    return TOKEN if policy == TOKEN else PLAIN


class TokenNotReady(TrustedIdentityError):
    """``token`` refused: not enough of the valid starts used a token (readiness rule)."""

    code = "not_ready"
    status = 409

    def __init__(self, message: str, usage: TokenUsage | None) -> None:
        super().__init__(message)
        self.usage = usage


def _not_ready_message(usage: TokenUsage | None) -> str:
    if usage is None:
        return (
            "not enough starts to tell: the signature forms of session starts are not "
            "counted, so nobody can tell whether every client sends a token; override "
            "explicitly to accept only tokens anyway"
        )
    if usage.readiness == NOT_ENOUGH_STARTS:
        return (
            f"not enough starts to tell: {usage.valid} valid identified users in the "
            f"readiness window, at least {app_settings.READINESS_MIN_STARTS} are needed; "
            "override explicitly to accept only tokens anyway"
        )
    return (
        f"tokens are not rolled out: {usage.token} of {usage.valid} valid identified users "
        f"({percent(usage.share)}) used a token, below the "
        f"{percent(app_settings.READINESS_THRESHOLD)} threshold; override explicitly to "
        "accept only tokens anyway"
    )


# ------------------------------------------------------------------- changing


def set_signature_form(
    platform: Platform,
    form: str,
    actor: Actor,
    *,
    max_age: timedelta | None = None,
    force: bool = False,
    reason: str = "",
) -> Platform:
    """Set which forms the platform accepts, and optionally its tokens' maximum age.

    Needs the ``enforce`` permission. Turning ``token`` on (from ``plain`` or
    ``either``) is refused with :class:`TokenNotReady` unless the readiness rule says
    ready, or ``force`` is given with a ``reason``, which the ``PolicyChange`` record
    keeps verbatim with the rule's figures.
    ``max_age`` None keeps the current one. Nothing changed, nothing written.
    """
    authorize(actor, "enforce", platform.space_id)
    if form not in FORMS:
        raise InvalidRequest(f"unknown signature form {form!r}: use plain, either or token")
    if max_age is not None:
        check_max_age(max_age)
    reason = (reason or "").strip()
    with transaction.atomic():
        locked = Platform.objects.select_for_update().select_related("space").get(pk=platform.pk)
        seconds = locked.token_max_age if max_age is None else int(max_age.total_seconds())
        if locked.signature_form == form and locked.token_max_age == seconds:
            return locked
        changes = []
        if locked.signature_form != form:
            changes.append(f"Signature form: {locked.signature_form} -> {form}.")
        if locked.token_max_age != seconds:
            changes.append(
                "Maximum token age: "
                f"{describe_duration(timedelta(seconds=locked.token_max_age))} -> "
                f"{describe_duration(timedelta(seconds=seconds))}."
            )
        moving_to_token = form == TOKEN and locked.signature_form != TOKEN
        usage = token_usage(locked) if moving_to_token else None
        override = ""
        if needs_override(locked.signature_form, form, usage):
            if not force:
                raise TokenNotReady(_not_ready_message(usage), usage)
            if not reason:
                raise MissingOverrideReason("overriding the readiness rule needs a reason")
            changes.append(f"Readiness rule overridden; override reason: {reason}")
            override = reason
        _record(actor, locked, form, seconds, usage, override)
        locked.signature_form = form
        locked.token_max_age = seconds
        locked.save(update_fields=["signature_form", "token_max_age"])
        audit(actor, locked, " ".join(changes), action="signature_form")
        verification_changed()
    return locked


def _record(
    actor: Actor,
    platform: Platform,
    form: str,
    seconds: int,
    usage: TokenUsage | None,
    override: str,
) -> None:
    """One ``PolicyChange`` per setting that changes (``platform`` still holds the old
    values); the readiness figures go with the form's move to ``token``."""
    if platform.signature_form != form:
        gated = form == TOKEN
        record_policy_change(
            actor,
            platform,
            PolicySetting.SIGNATURE_FORM,
            platform.signature_form,
            form,
            override_reason=override,
            readiness=readiness_of(usage) if gated else "",
            readiness_count=usage.valid if gated and usage else None,
            readiness_share=usage.share if gated and usage else None,
        )
    if platform.token_max_age != seconds:
        record_policy_change(
            actor,
            platform,
            PolicySetting.TOKEN_MAX_AGE,
            str(platform.token_max_age),
            str(seconds),
        )


#: The settings ``set_signature_form`` changes, whose latest change the page shows.
SIGNATURE_SETTINGS = (PolicySetting.SIGNATURE_FORM, PolicySetting.TOKEN_MAX_AGE)


def last_signature_form_changes(platform_ids: Sequence[int]) -> dict[int, PolicyChange]:
    """Per platform (when it ever changed), the latest change of the forms it accepts or
    of its tokens' maximum age: who, through which door, when, from what to what and
    any override's reason. One query."""
    return last_policy_changes(platform_ids, SIGNATURE_SETTINGS)
