"""The evidence a gated change's confirmation page shows: "may I turn enforcement on
now?", "may this platform accept only tokens now?", "may it verify public keys only
now?".

Each answer gathers, for one platform and the readiness window, what the services
decide and count: the readiness verdict (the rule is ``figures``', ``signature_forms``'
and ``key_sources``'), how long the platform was actually observed, the starts and
distinct users a day the change would refuse, the reasons of the starts without a
valid signature, and the client versions that mostly don't sign. The verdict in words
tells "not rolled out" (the share below the threshold) from "too little data to tell"
(fewer than ``READINESS_MIN_STARTS`` distinct users, or less than ``MIN_OBSERVED``
observed); the override itself stays the rule's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.utils import timezone

from ..conf import app_settings
from ..models import Platform
from .diagnostics import VersionRow, forecast, forms_for, reasons_for, versions_for
from .durations import describe_duration
from .figures import (
    COUNTED_FORMS,
    NOT_ENOUGH_STARTS,
    NOT_READY,
    READY,
    Figures,
    figures_for,
    users_of_forms,
    window_start,
)
from .signature_forms import PLAIN, TOKEN, TokenUsage, token_usage

#: The verdicts, in words on the pages.
TOO_LITTLE_DATA = "too_little_data"
NOT_ROLLED_OUT = "not_rolled_out"
#: Below this span observed, a day's forecast would extrapolate a few hours' traffic
#: (a night, a morning) to a whole day: the verdict says there is too little data.
MIN_OBSERVED = timedelta(days=1)


@dataclass(frozen=True)
class Observed:
    """The span of the readiness window a platform was actually counted over: from its
    first counted hour in the window (at least an hour), not the window's length."""

    since: datetime | None  # None: nothing counted in the window
    span: timedelta

    @property
    def young(self) -> bool:
        return self.span < MIN_OBSERVED

    @property
    def words(self) -> str:
        """``3 days``, ``5 hours``: whole days past a day, else whole hours."""
        if self.span >= timedelta(days=1):
            return describe_duration(timedelta(days=self.span // timedelta(days=1)))
        return describe_duration(timedelta(hours=max(1, self.span // timedelta(hours=1))))

    def per_day(self, count: int) -> float:
        return count / (self.span / timedelta(days=1))


def observed_span(figures: Figures, now: datetime | None = None) -> Observed:
    """How long the platform was counted in the window its figures cover (from the
    window's midnight UTC, as every figure of it: ``Figures.first_counted``). No query."""
    now = now or timezone.now()
    first = figures.first_counted
    since = None if first is None else max(first, window_start())
    return Observed(since, max(now - (since or now), timedelta(hours=1)))


def verdict_of(readiness: str, observed: Observed) -> str:
    """``ready``, ``not_rolled_out`` (the share is below the threshold) or
    ``too_little_data`` (too few distinct users, or too short a span observed)."""
    if readiness == NOT_ENOUGH_STARTS:
        return TOO_LITTLE_DATA
    if readiness == NOT_READY:
        return NOT_ROLLED_OUT
    return TOO_LITTLE_DATA if observed.young else READY


def unsigned_versions(versions: list[VersionRow]) -> list[VersionRow]:
    """The app versions whose identified starts are mostly not valid: their valid share
    below ``READINESS_THRESHOLD``, most failing starts first."""
    threshold = app_settings.READINESS_THRESHOLD
    failing = [v for v in versions if v.valid_share is not None and v.valid_share < threshold]
    return sorted(failing, key=lambda v: -v.failing)


def nonzero_reasons(reasons: dict[str, int]) -> list[tuple[str, int]]:
    """The reasons that occurred, most frequent first."""
    return sorted(((r, n) for r, n in reasons.items() if n), key=lambda item: -item[1])


@dataclass(frozen=True)
class EnforcementEvidence:
    """What turning enforcement on would do, from the readiness window."""

    figures: Figures
    observed: Observed
    reasons: list[tuple[str, int]]
    versions: list[VersionRow]  # the app versions that mostly don't sign
    old_versions_share: float | None  # of the failing starts, from versions up to ``up_to``
    up_to: str | None

    @property
    def verdict(self) -> str:
        return verdict_of(self.figures.readiness, self.observed)

    @property
    def failing_starts(self) -> int:
        """Identified starts without a valid signature: what enforcement rejects."""
        return self.figures.invalid + self.figures.missing + self.figures.rejected

    @property
    def failing_users(self) -> int:
        """Distinct identified users with a start without a valid signature: those
        enforcement would reject, on one device or all (a valid start elsewhere does not
        keep an old app version's starts from being rejected)."""
        return self.figures.distinct_failing

    @property
    def starts_per_day(self) -> float:
        return self.observed.per_day(self.failing_starts)

    @property
    def users_per_day(self) -> float:
        return self.observed.per_day(self.failing_users)


def enforcement_evidence(platform: Platform, figures: Figures | None = None) -> EnforcementEvidence:
    """The evidence for turning enforcement on, from ``figures`` (those the service
    decided on, when it refused) or the readiness window's."""
    pk = platform.pk
    figures = figures or figures_for([pk])[pk]
    versions = versions_for([pk])[pk]
    outlook = forecast(figures, versions)
    return EnforcementEvidence(
        figures=figures,
        observed=observed_span(figures),
        reasons=nonzero_reasons(reasons_for([pk])[pk]),
        versions=unsigned_versions(versions),
        old_versions_share=outlook.old_versions_share,
        up_to=outlook.up_to,
    )


@dataclass(frozen=True)
class TokenEvidence:
    """What accepting only tokens would do: the valid starts still signed plain (and
    their users) would turn invalid."""

    usage: TokenUsage | None
    observed: Observed
    plain_starts: int  # valid starts signed plain in the window
    reasons: list[tuple[str, int]]
    versions: list[VersionRow]
    #: Distinct valid users with a valid start signed with a token of either kind (HS256
    #: or public-key: accepting only tokens refuses neither); None: the usage's tokens.
    token_users: int | None = None

    @property
    def readiness(self) -> str:
        return NOT_ENOUGH_STARTS if self.usage is None else self.usage.readiness

    @property
    def verdict(self) -> str:
        return verdict_of(self.readiness, self.observed)

    @property
    def plain_users(self) -> int:
        """Distinct valid users none of whose valid starts used a token, HS256 or signed
        with a public key: those accepting only tokens may refuse."""
        if self.usage is None:
            return 0
        token = self.usage.token if self.token_users is None else self.token_users
        return max(0, self.usage.valid - max(token, self.usage.token))

    @property
    def starts_per_day(self) -> float:
        return self.observed.per_day(self.plain_starts)

    @property
    def users_per_day(self) -> float:
        return self.observed.per_day(self.plain_users)


def token_evidence(platform: Platform, usage: TokenUsage | None = None) -> TokenEvidence:
    """The evidence for accepting only tokens, from ``usage`` (what the service decided
    on, when it refused) or the readiness window's."""
    pk = platform.pk
    return TokenEvidence(
        usage=usage if usage is not None else token_usage(platform),
        observed=observed_span(figures_for([pk])[pk]),
        plain_starts=forms_for([pk])[pk][PLAIN].get("valid", 0),
        reasons=nonzero_reasons(reasons_for([pk])[pk]),
        versions=unsigned_versions(versions_for([pk])[pk]),
        token_users=users_of_forms(pk, COUNTED_FORMS),
    )


class PublicKeyUsage(Protocol):
    """Distinct valid users and those of them who signed with a public key, and the rule's
    verdict on them (``key_sources.KeyUsage``, which decides)."""

    @property
    def valid(self) -> int: ...

    @property
    def public_key(self) -> int: ...

    @property
    def readiness(self) -> str: ...


@dataclass(frozen=True)
class KeyEvidence:
    """What verifying public keys only would do: the valid starts signed with the secret
    (plain signatures and HS256 tokens), and their users, would turn invalid."""

    usage: PublicKeyUsage
    observed: Observed
    secret_starts: int  # valid starts signed with the secret in the window
    reasons: list[tuple[str, int]]
    versions: list[VersionRow]

    @property
    def verdict(self) -> str:
        return verdict_of(self.usage.readiness, self.observed)

    @property
    def secret_users(self) -> int:
        """Distinct valid users none of whose valid starts used a public-key token."""
        return max(0, self.usage.valid - self.usage.public_key)

    @property
    def starts_per_day(self) -> float:
        return self.observed.per_day(self.secret_starts)

    @property
    def users_per_day(self) -> float:
        return self.observed.per_day(self.secret_users)


def key_evidence(platform: Platform, usage: PublicKeyUsage) -> KeyEvidence:
    """The evidence for verifying public keys only, from ``usage`` (``key_sources``'
    readiness: what the service decided on, when it refused)."""
    pk = platform.pk
    forms = forms_for([pk])[pk]
    return KeyEvidence(
        usage=usage,
        observed=observed_span(figures_for([pk])[pk]),
        secret_starts=sum(forms[form].get("valid", 0) for form in (PLAIN, TOKEN)),
        reasons=nonzero_reasons(reasons_for([pk])[pk]),
        versions=unsigned_versions(versions_for([pk])[pk]),
    )
