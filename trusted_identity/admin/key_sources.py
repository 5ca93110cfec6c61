"""Changing what a platform verifies with (its secret, both, or public keys only), from
the space's Trusted Identity page: a :class:`~.views.GatedChangeView` whose evidence
is the share of valid identified users whose starts used a public-key token. Verifying
public keys only below the rule needs the override and a reason, and deletes the
platform's secrets; the rule, the override, the deletion and the audit entry are
``key_sources.set_key_source``'s.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..forms import KeySourceForm
from ..models import KeySource
from ..services import gate_evidence, key_sources, public_keys
from ..services.diagnostics import forms_for
from ..services.figures import READY, figures_for
from ..services.verification import PUBLIC_KEY
from .display import percent
from .gate_display import evidence_lists, gate_context, per_day
from .views import GatedChangeView


class KeySourceView(GatedChangeView):
    form_class = KeySourceForm
    choice_field = "source"
    refusals = (key_sources.KeysNotReady,)
    crumb = gettext_lazy("Key source")
    template_name = "trusted_identity/admin/key_source_confirm.html"

    def get_title(self) -> str:
        return _("Change what %(platform)s verifies with?") % {"platform": self.platform_label}

    def get_form(self) -> forms.Form:
        form = super().get_form()
        form.fields["source"].widget = forms.HiddenInput()  # chosen on the page, confirmed here
        return form

    def choice_error(self) -> str:
        return _("Choose what the platform verifies with.")

    def refusal_error(self, evidence: dict[str, Any]) -> str:
        if evidence.get("verdict") == gate_evidence.NOT_ROLLED_OUT:
            return _(
                "Public keys are not rolled out far enough. Tick the override box to verify "
                "public keys only anyway."
            )
        return _(
            "There is too little data to tell whether every client signs with a public key. "
            "Tick the override box to verify public keys only anyway."
        )

    def unchanged_message(self, form: forms.Form) -> str:
        if form.cleaned_data["source"] != self.platform.key_source:
            return ""
        return _("Nothing changed: %(platform)s already verifies with %(source)s.") % {
            "platform": self.platform_label,
            "source": self.platform.get_key_source_display().lower(),
        }

    def get_evidence(self, form: forms.Form) -> dict[str, Any]:
        return self.evidence_of(
            form.cleaned_data["source"], key_sources.key_readiness(self.platform)
        )

    def evidence_of_refusal(self, refusal: key_sources.KeysNotReady) -> dict[str, Any]:
        return self.evidence_of(key_sources.PUBLIC_KEY_ONLY, refusal.usage)

    def evidence_of(self, chosen: str, usage: key_sources.KeyUsage) -> dict[str, Any]:
        current = self.platform.key_source
        gated: dict[str, Any] = {}
        if chosen == key_sources.PUBLIC_KEY_ONLY:
            evidence = gate_evidence.key_evidence(self.platform, usage)
            gated = {
                "evidence": evidence,
                "verdict": evidence.verdict,
                "starts_per_day": per_day(evidence.starts_per_day),
                "users_per_day": per_day(evidence.users_per_day),
                **evidence_lists(evidence.reasons, evidence.versions),
            }
        figures = figures_for([self.platform.pk])[self.platform.pk]
        return {
            **gated,
            "chosen": chosen,
            "chosen_label": KeySource(chosen).label,
            "current": current,
            "current_label": KeySource(current).label,
            "usage": usage,
            "usage_share": percent(usage.share),
            # Those whose starts a move back to the secret alone turns invalid.
            "public_key_starts": public_key_starts(self.platform.pk),
            "figures": figures,
            "no_keys": chosen != key_sources.SECRET
            and not public_keys.has_public_keys(self.platform),
            "needs_override": chosen == key_sources.PUBLIC_KEY_ONLY and usage.readiness != READY,
            **gate_context(),
        }

    def apply(self, form: forms.Form, force: bool, reason: str) -> None:
        key_sources.set_key_source(
            self.platform, form.cleaned_data["source"], self.actor(), force=force, reason=reason
        )

    def success_message(self, form: forms.Form) -> str:
        chosen, before = form.cleaned_data["source"], self.platform.key_source
        words = {
            key_sources.SECRET: _(
                "%(platform)s now verifies its secret only: public-key tokens count as "
                "form_not_allowed."
            ),
            key_sources.BOTH: _(
                "%(platform)s now verifies its secret and its public keys, while clients move."
            ),
            key_sources.PUBLIC_KEY_ONLY: _(
                "%(platform)s now verifies public-key tokens only. Its secrets were deleted: "
                "nothing stored here can sign for it, and there is no secret to reveal or "
                "rotate."
            ),
        }[chosen] % {"platform": self.platform_label}
        if before == key_sources.PUBLIC_KEY_ONLY:
            words += " " + _(
                "It has a new secret, which no client has yet: reveal it when you are ready "
                "to deploy it."
            )
        return words


def public_key_starts(platform_id: int) -> int:
    """The window's valid starts signed with a public key (``diagnostics.forms_for``)."""
    return forms_for([platform_id])[platform_id][PUBLIC_KEY].get("valid", 0)
