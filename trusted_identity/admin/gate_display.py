"""What the confirmation pages of gated changes (enforcement, signature forms) add to
their context to word the evidence of ``services.gate_evidence``: the rule's constants,
rates a day, and the reasons and app versions as rows. Wording only: the figures and
the verdicts are the service's."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from ..conf import app_settings
from ..formatting import number
from ..services.diagnostics import VersionRow
from .display import percent
from .rollout import REASON_HELP


def gate_context() -> dict[str, Any]:
    """The readiness rule's constants, as the pages word them."""
    return {
        "threshold": percent(app_settings.READINESS_THRESHOLD),
        "min_starts": app_settings.READINESS_MIN_STARTS,
        "window_days": app_settings.READINESS_WINDOW.days,
    }


def per_day(rate: float) -> str:
    """A rate a day as the pages say it: ``about 12``, ``fewer than 1``, ``0``."""
    if rate <= 0:
        return "0"
    if rate < 1:
        return _("fewer than 1")
    return _("about %(n)s") % {"n": number(round(rate))}


def evidence_lists(
    reasons: list[tuple[str, int]], versions: list[VersionRow]
) -> dict[str, list[dict[str, Any]]]:
    """The reasons (with what each means) and the app versions that don't sign, as rows."""
    return {
        "reason_rows": [
            {"reason": reason, "count": count, "help": REASON_HELP.get(reason, "")}
            for reason, count in reasons
        ],
        "version_rows": [
            {
                "version": version.version,
                "share": percent(version.valid_share),
                "identified": version.identified,
                "failing": version.failing,
            }
            for version in versions
        ],
    }
