"""What the Trusted Identity page shows of a space's rollout, beyond the counts: the
summary of every platform, and per platform its client versions with the enforcement
forecast, the reasons of invalid starts (each explained), how much each verifying
secret is still used, the failure log, and who last changed enforcement and the
signatures accepted (from their ``PolicyChange`` records). It reads
the service layer (a fixed number of queries for all the platforms) and words the
result; it decides nothing and never touches a secret's plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..conf import app_settings
from ..formatting import form_shares, moment, number, percent
from ..models import Platform
from ..services import enforcement
from ..services.diagnostics import (
    failure_coverage,
    forecast,
    forms_for,
    reasons_for,
    recent_failures_for,
    secret_usage,
    versions_for,
)
from ..services.figures import FORMS, Figures, window_start
from ..services.forecast import VersionRow
from ..services.rejections import QUIET, RejectionsNow, rejections_now
from ..services.signature_forms import last_signature_form_changes

#: The newest failures the page lists per platform (the log keeps more: the CLI's
#: ``failures`` prints them).
FAILURES_SHOWN = 20

#: What each reason of a failed start means, in the order of ``services`` REASONS.
REASON_HELP = {
    "missing": _(
        "A user id without a signature: the client does not sign yet (an old app version, "
        "or signing not wired in)."
    ),
    "malformed": _("Not 64 hex digits, nor a token: the client sent something else."),
    "no_match": _(
        "Well formed, but no secret of this platform signed this user id: a wrong or "
        "unknown secret, or a user id changed after signing; for a public-key token, the "
        "key its kid names did not sign it (another private key, or an altered token)."
    ),
    "other_platform": _(
        "Signed with the current secret of another platform of this space: the client "
        "was built with the wrong platform's secret."
    ),
    "expired_secret": _(
        "Signed with a secret whose grace has ended (in the last 30 days): the client "
        "still has a rotated-out secret."
    ),
    "token_malformed": _(
        "A token that is not well formed: its three parts, its header (HS256, or the "
        "algorithm of the public key its kid names: ES256, EdDSA, RS256), its signature's "
        "length or its claims."
    ),
    "token_expired": _(
        "A token past its expiry (exp): reused after it ran out, or the client's clock is off."
    ),
    "token_subject_mismatch": _("A token for another user: its sub is not the userId sent."),
    "token_too_long_lived": _("A token whose lifetime (exp - iat) exceeds the maximum token age."),
    "form_not_allowed": _(
        "A signature form this platform does not accept (plain or token): see "
        "'Signatures accepted'; or a public-key token on a platform that verifies its "
        "secret only: see its key source."
    ),
    "unknown_key": _(
        "A public-key token whose kid names none of this platform's keys (or without a "
        "kid, while the platform has more than one): a key not added yet, or removed."
    ),
    "key_expired": _(
        "A public-key token signed with a key of this platform past its expiry: the "
        "client's signer still uses the old key."
    ),
}

READINESS_LABEL = {
    "ready": _("Ready"),
    "not_ready": _("Not ready"),
    "not_enough_starts": _("Too few users to tell"),
}


def now_state(now: RejectionsNow | None) -> dict[str, Any] | None:
    """The "now" panel of an enforced platform: its state and headline, and the last
    hour's and the last 24 hours' rejections; None for a platform not enforcing."""
    if now is None:
        return None
    hour = now.hour
    if now.state == QUIET:
        headline = _("Quiet: no start rejected in the last hour (since %(since)s).") % {
            "since": moment(hour.since)
        }
    else:
        headline = _(
            "Rejecting: %(starts)s %(start_word)s from %(users)s %(user_word)s in the last "
            "hour (since %(since)s)"
        ) % {
            "starts": number(hour.starts),
            "start_word": ngettext("start", "starts", hour.starts),
            "users": number(hour.users),
            "user_word": ngettext("user", "users", hour.users),
            "since": moment(hour.since),
        }
        top = hour.top_reason
        if top is not None:
            headline += _(", %(n)s of them %(reason)s") % {"n": number(top[1]), "reason": top[0]}
        headline += _(": look at the failures below.")
    return {
        "state": now.state,
        "headline": headline,
        "windows": [
            {"name": "hour", "label": _("Last hour"), "rejections": now.hour},
            {"name": "day", "label": _("Last 24 hours"), "rejections": now.day},
        ],
    }


def summary(
    platforms: Sequence[Platform],
    figures: dict[int, Figures],
    now: dict[int, RejectionsNow] | None = None,
) -> list[dict]:
    """One row per platform for the table at the top of the page: the users and starts
    shares as the platform's section says them, and for an enforced platform what it
    rejected in the last hour (its readiness is no longer the question)."""
    if now is None:
        now = rejections_now([p.pk for p in platforms if p.enforced])
    rows = []
    for platform in platforms:
        figs = figures[platform.pk]
        rows.append(
            {
                "platform": platform,
                "figures": figs,
                "share": percent(figs.valid_share),
                "start_share": percent(figs.start_share),
                "readiness": figs.readiness,
                "readiness_label": READINESS_LABEL[figs.readiness],
                "now": now.get(platform.pk) if platform.enforced else None,
                "window_since": moment(window_start()),
            }
        )
    return rows


def versions_total(versions: Sequence[VersionRow]) -> VersionRow | None:
    """Every version's starts summed: the versions table's last row, whose valid share is
    the platform's valid share of identified starts (the same window)."""
    if not versions:
        return None
    total = VersionRow("all")
    for row in versions:
        for outcome, n in row.counts.items():
            total.counts[outcome] += n
    return total


def forms_line(forms: dict[str, dict[str, int]], figures: Figures) -> str:
    """The window's valid starts by form, then the share of its valid users who signed in
    each form counted apart, which the rules for accepting only tokens and for public
    keys only read: ``Valid starts: 1,204 plain · 310 token · 50 public-key. Of 1,500
    valid users: token 20.7% · public-key 3.3%.`` (users may sign in more than one form;
    a plain signature's users are not counted apart)."""
    starts = {form: forms.get(form, {}).get("valid", 0) for form in FORMS}
    if not sum(starts.values()):
        return _("No valid signed start in the window yet.")
    by_form = " · ".join(f"{number(n)} {form}" for form, n in starts.items())
    line = _("Valid starts: %(by_form)s.") % {"by_form": by_form}
    if figures.distinct_valid:
        line += " " + _("Of %(users)s valid users: %(shares)s.") % {
            "users": number(figures.distinct_valid),
            "shares": form_shares(figures.distinct_valid, figures.users_by_form),
        }
    return line


def diagnostics(
    platforms: Sequence[Platform], figures: dict[int, Figures]
) -> dict[int, dict[str, Any]]:
    """Per platform id, the page's rollout parts: the users and starts lines, the "now"
    of an enforced platform or the readiness and forecast of one not yet enforcing,
    versions, reasons, secret use, failures and the last enforcement and signature-form
    changes."""
    ids = [p.pk for p in platforms]
    now = rejections_now([p.pk for p in platforms if p.enforced])
    versions = versions_for(ids)
    reasons = reasons_for(ids)
    usage = secret_usage(ids)
    changes = enforcement.last_enforcement_changes(ids)
    form_changes = last_signature_form_changes(ids)
    forms = forms_for(ids)
    failures_of = recent_failures_for(ids, limit=FAILURES_SHOWN + 1)
    coverage = failure_coverage(ids)
    result = {}
    for platform in platforms:
        pk = platform.pk
        failures = failures_of[pk]
        result[pk] = {
            "window_since": moment(window_start()),
            "show_readiness": not platform.enforced,  # once enforcing, "now" is the question
            "start_share": percent(figures[pk].start_share),
            "now": now_state(now.get(pk)),
            "versions": versions[pk],
            "versions_total": versions_total(versions[pk]),
            "forecast": (None if platform.enforced else forecast(figures[pk], versions[pk])),
            "reasons": [
                {"reason": reason, "count": count, "help": REASON_HELP.get(reason, "")}
                for reason, count in reasons[pk].items()
                if count
            ],
            "secret_usage": usage[pk],
            "failures": failures[:FAILURES_SHOWN],
            "more_failures": len(failures) > FAILURES_SHOWN,
            "failure_coverage": coverage[pk],
            "failure_log_per_second": app_settings.FAILURE_LOG_PER_SECOND,
            "enforcement_change": changes.get(pk),
            "signature_form_change": form_changes.get(pk),
            "forms_line": forms_line(forms[pk], figures[pk]),
        }
    return result
