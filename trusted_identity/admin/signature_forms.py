"""Changing which signature forms a platform accepts (and its tokens' maximum age), from
the space's Trusted Identity page: a :class:`~.views.GatedChangeView` whose evidence is
the share of valid starts that used a token. Accepting only tokens below the rule needs
the override and a reason; the rule, the override and the audit entry are
``signature_forms.set_signature_form``'s.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..forms import SignatureFormForm, compact_duration
from ..models import SignatureForm
from ..services import durations, gate_evidence, signature_forms
from ..services.signature_forms import TOKEN
from .display import percent
from .gate_display import evidence_lists, gate_context, per_day
from .views import GatedChangeView


class SignatureFormView(GatedChangeView):
    form_class = SignatureFormForm
    choice_field = "form"
    refusals = (signature_forms.TokenNotReady,)
    fields = ["max_age"]
    crumb = gettext_lazy("Signatures accepted")
    template_name = "trusted_identity/admin/signature_form_confirm.html"

    def get_title(self) -> str:
        return _("Change the signatures %(platform)s accepts?") % {"platform": self.platform_label}

    def get_form(self) -> forms.Form:
        form = super().get_form()
        if "max_age" not in form.data:  # unchanged unless given: the current age
            form.data = form.data.copy()
            form.data["max_age"] = compact_duration(self.platform.token_max_age)
        form.fields["form"].widget = forms.HiddenInput()  # chosen on the page, confirmed here
        return form

    def choice_error(self) -> str:
        return _("Choose which signatures the platform accepts.")

    def refusal_error(self, evidence: dict[str, Any]) -> str:
        if evidence.get("verdict") == gate_evidence.NOT_ROLLED_OUT:
            return _(
                "Tokens are not rolled out far enough. Tick the override box to accept only "
                "tokens anyway."
            )
        return _(
            "There is too little data to tell whether every client sends a token. Tick the "
            "override box to accept only tokens anyway."
        )

    def unchanged_message(self, form: forms.Form) -> str:
        max_age = form.cleaned_data.get("max_age")
        seconds = None if max_age is None else int(max_age.total_seconds())
        if form.cleaned_data["form"] != self.platform.signature_form:
            return ""
        if seconds != self.platform.token_max_age:
            return ""
        return _("Nothing changed: %(platform)s already accepts these signatures.") % {
            "platform": self.platform_label
        }

    def get_evidence(self, form: forms.Form) -> dict[str, Any]:
        usage = signature_forms.token_usage(self.platform)
        return self.evidence_of(form.cleaned_data["form"], usage)

    def evidence_of_refusal(self, refusal: signature_forms.TokenNotReady) -> dict[str, Any]:
        return self.evidence_of(TOKEN, refusal.usage)

    def evidence_of(self, chosen: str, usage: signature_forms.TokenUsage | None) -> dict[str, Any]:
        current = self.platform.signature_form
        gated = {}
        if chosen == TOKEN and current != TOKEN:
            evidence = gate_evidence.token_evidence(self.platform, usage)
            usage = evidence.usage
            gated = {
                "evidence": evidence,
                "verdict": evidence.verdict,
                "starts_per_day": per_day(evidence.starts_per_day),
                "users_per_day": per_day(evidence.users_per_day),
                **evidence_lists(evidence.reasons, evidence.versions),
            }
        return {
            **gated,
            "chosen": chosen,
            "chosen_label": SignatureForm(chosen).label,
            "current_label": SignatureForm(current).label,
            "current_max_age": durations.describe_duration(
                timedelta(seconds=self.platform.token_max_age)
            ),
            "usage": usage,
            "usage_share": percent(usage.share) if usage is not None else "",
            "needs_override": signature_forms.needs_override(current, chosen, usage),
            **gate_context(),
        }

    def apply(self, form: forms.Form, force: bool, reason: str) -> None:
        signature_forms.set_signature_form(
            self.platform,
            form.cleaned_data["form"],
            self.actor(),
            max_age=form.cleaned_data["max_age"],
            force=force,
            reason=reason,
        )

    def success_message(self, form: forms.Form) -> str:
        max_age = form.cleaned_data["max_age"] or timedelta(seconds=self.platform.token_max_age)
        return _("%(platform)s now accepts: %(form)s. A token may live at most %(age)s.") % {
            "platform": self.platform_label,
            "form": SignatureForm(form.cleaned_data["form"]).label.lower(),
            "age": durations.describe_duration(max_age),
        }
