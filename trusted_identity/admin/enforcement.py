"""Turning a platform's enforcement on or off, from the space's Trusted Identity page: a
:class:`~.views.GatedChangeView` whose evidence is the readiness figures (the share of
distinct identified users with a valid signature). Turning on below the rule needs the
override and a reason; the rule, the override and the audit entry are
``enforcement.set_enforcement``'s.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext as _

from ..forms import EnforcementForm
from ..services import enforcement, gate_evidence
from ..services.enforcement import NotReady
from ..services.figures import Figures, readiness
from .display import percent
from .gate_display import evidence_lists, gate_context, per_day
from .views import GatedChangeView


class EnforcementView(GatedChangeView):
    form_class = EnforcementForm
    choice_field = "enabled"
    refusals = (NotReady,)
    template_name = "trusted_identity/admin/enforcement_confirm.html"

    @property
    def crumb(self) -> str:  # type: ignore[override]
        return _("Turn on enforcement") if self.enabling else _("Turn off enforcement")

    @property
    def enabling(self) -> bool:
        return not self.platform.enforced

    def get_title(self) -> str:
        title = (
            _("Turn on enforcement for %(platform)s?")
            if self.enabling
            else _("Turn off enforcement for %(platform)s?")
        )
        return title % {"platform": self.platform_label}

    def choice_error(self) -> str:
        return _("Choose whether to turn enforcement on or off.")

    def refusal_error(self, evidence: dict[str, Any]) -> str:
        if evidence["verdict"] == gate_evidence.NOT_ROLLED_OUT:
            return _(
                "Signing is not rolled out far enough. Tick the override box to turn "
                "enforcement on anyway."
            )
        return _(
            "There is too little data to tell whether signing is rolled out. Tick the "
            "override box to turn enforcement on anyway."
        )

    def unchanged_message(self, form: forms.Form) -> str:
        if form.cleaned_data["enabled"] != self.platform.enforced:
            return ""
        message = (
            _("Enforcement is already on for %(platform)s.")
            if self.platform.enforced
            else _("Enforcement is already off for %(platform)s.")
        )
        return message % {"platform": self.platform_label}

    def get_evidence(self, form: forms.Form) -> dict[str, Any]:
        return self.evidence_of(readiness(self.platform))

    def evidence_of_refusal(self, refusal: NotReady) -> dict[str, Any]:
        return self.evidence_of(refusal.figures)

    def evidence_of(self, figures: Figures) -> dict[str, Any]:
        ready = figures.is_ready()
        context = {
            "enabling": self.enabling,
            "figures": figures,
            "share": percent(figures.valid_share),
            "ready": ready,
            "needs_override": self.enabling and not ready,
            **gate_context(),
        }
        if not self.enabling:
            return context
        evidence = gate_evidence.enforcement_evidence(self.platform, figures)
        return {
            **context,
            "evidence": evidence,
            "verdict": evidence.verdict,
            "starts_per_day": per_day(evidence.starts_per_day),
            "users_per_day": per_day(evidence.users_per_day),
            "old_versions_share": percent(evidence.old_versions_share),
            **evidence_lists(evidence.reasons, evidence.versions),
        }

    def apply(self, form: forms.Form, force: bool, reason: str) -> None:
        enforcement.set_enforcement(
            self.platform, form.cleaned_data["enabled"], self.actor(), force=force, reason=reason
        )

    def success_message(self, form: forms.Form) -> str:
        message = (
            _(
                "Enforcement is now on for %(platform)s: identified session starts without a "
                "valid signature are rejected."
            )
            if form.cleaned_data["enabled"]
            else _(
                "Enforcement is now off for %(platform)s: session starts are accepted whatever "
                "their signature, and counted."
            )
        )
        return message % {"platform": self.platform_label}
