"""The signature tester of a space's Trusted Identity page: a user id and a signature
in, the verdict out (which secret it matched, the bytes hashed), per platform.

:class:`SignatureTesterView` is one URL under the page, ``<space>/trusted-identity/<kind>/
test-signature/``: GET shows the form, POST (with the CSRF token) tests. Only those who
may reveal the platform's secret see the form or may post it (anyone else: 403);
``signature_tester.check_signature`` checks that again, rate-limits per user
(``TESTER_RATE_LIMIT``: 429 with Retry-After) and writes the audit entry. The form on
the settings page itself is ``includes/signature_tester.html``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters

from ..exceptions import RateLimited, TrustedIdentityError
from ..services import signature_tester
from ..services.signature_tester import TESTER_PERMISSION
from .views import PlatformActionView, admin_form

#: The attributes of a field whose value is a code, not prose.
CODE_INPUT = {"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}


class SignatureTestForm(forms.Form):
    """The user id and the signature exactly as typed: nothing is stripped. The
    signature is a textarea wide enough for 64 hex digits, tall enough for a token."""

    user_id = forms.CharField(
        label=gettext_lazy("User id"),
        strip=False,
        widget=forms.TextInput(attrs={**CODE_INPUT, "class": "vTextField ti-code-field"}),
    )
    signature = forms.CharField(
        label=gettext_lazy("Signature"),
        strip=False,
        help_text=gettext_lazy("64 hex digits, a token, or a token signed with a public key"),
        widget=forms.Textarea(
            attrs={**CODE_INPUT, "rows": 3, "cols": 66, "class": "ti-code-field ti-signature-field"}
        ),
    )


def verdict_tone(found: Any) -> str:
    """How the verdict reads at a glance: ``ok`` (valid with the current secret),
    ``warn`` (it matches, but not for long or not for a session start), ``bad``."""
    if found.verdict == signature_tester.VALID_CURRENT and found.accepted:
        return "ok"
    if found.verdict in (signature_tester.VALID_CURRENT, signature_tester.VALID_PREVIOUS):
        return "warn"
    return "bad"


class SignatureTesterView(PlatformActionView):
    """Test a signature: GET shows the form, POST answers the verdict."""

    permission = TESTER_PERMISSION
    crumb = gettext_lazy("Test a signature")
    template_name = "trusted_identity/admin/signature_tester.html"

    def get_title(self) -> str:
        return _("Test a signature (%(platform)s)") % {"platform": self.platform_label}

    @method_decorator(sensitive_post_parameters("signature"))
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.show(SignatureTestForm())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = SignatureTestForm(request.POST)
        if not form.is_valid():
            return self.show(form, status=400)
        try:
            found = signature_tester.check_signature(
                self.actor(),
                self.platform,
                None,
                form.cleaned_data["user_id"],
                form.cleaned_data["signature"],
            )
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except RateLimited as exc:
            response = self.show(form, error=exc.message, status=429)
            response["Retry-After"] = str(exc.retry_after)
            return response
        except TrustedIdentityError as exc:
            return self.show(form, error=exc.message, status=400)
        return self.show(form, found=found)

    def show(
        self,
        form: SignatureTestForm,
        found: Any = None,
        error: str = "",
        status: int = 200,
    ) -> HttpResponse:
        fieldsets = [(None, {"fields": ["user_id", "signature"]})]
        context = self.get_context_data(
            found=found,
            tone=verdict_tone(found) if found is not None else "",
            error=error,
            **admin_form(form, fieldsets, self.model_admin),
        )
        response = self.render_to_response(context, status=status)
        add_never_cache_headers(response)
        return response
