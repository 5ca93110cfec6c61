"""The signature tester of a space's Trusted Identity page: a user id and a signature
in, the verdict out (which secret it matched, the bytes hashed), per platform.

``SignatureTesterMixin`` adds one URL under the page, ``<space>/trusted-identity/<kind>/
test-signature/``: GET shows the form, POST (with the CSRF token) tests. Only those who
may reveal the platform's secret see the form or may post it (anyone else: 403);
``services.test_signature`` checks that again, rate-limits per user
(``TESTER_RATE_LIMIT``: 429 with Retry-After) and writes the audit entry. The form on
the settings page itself is ``includes/signature_tester.html``.
"""

from __future__ import annotations

from django import forms
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters

from .. import services
from ..exceptions import PermissionDenied as ServicePermissionDenied
from ..exceptions import RateLimited, TrustedIdentityError
from ..services.signature_tester import TESTER_PERMISSION
from .base import actor, admin_url, permissions, space_page_url


class SignatureTestForm(forms.Form):
    """The user id and the signature exactly as typed: nothing is stripped."""

    user_id = forms.CharField(label=gettext_lazy("User id"), strip=False)
    signature = forms.CharField(
        label=gettext_lazy("Signature"),
        strip=False,
        help_text=gettext_lazy("64 hex digits, or a token"),
    )


class SignatureTesterMixin:
    """Test a signature from the space's Trusted Identity page.

    Used by ``SpaceAdmin`` before ``SpaceSettingsPageMixin``, whose helpers it uses.
    """

    signature_tester_template = "trusted_identity/admin/signature_tester.html"

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            space_page_url(
                self, "<str:kind>/test-signature/", self.signature_tester_view, "test_signature"
            ),
            *super().get_urls(),
        ]

    @method_decorator(sensitive_post_parameters("signature"))
    def signature_tester_view(
        self, request: HttpRequest, object_id: str, kind: str
    ) -> HttpResponse:
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        if not permissions(request).can(TESTER_PERMISSION, space):
            raise PermissionDenied
        found, error, status, retry_after = None, "", 200, None
        if request.method == "POST":
            form = SignatureTestForm(request.POST)
            if form.is_valid():
                try:
                    found = services.test_signature(
                        actor(request),
                        platform,
                        None,
                        form.cleaned_data["user_id"],
                        form.cleaned_data["signature"],
                    )
                except ServicePermissionDenied:
                    raise PermissionDenied from None
                except RateLimited as exc:
                    error, status, retry_after = exc.message, 429, exc.retry_after
                except TrustedIdentityError as exc:
                    error, status = exc.message, 400
            else:
                status = 400
        else:
            form = SignatureTestForm()
        context = self._context(
            request,
            space,
            title=_("Test a signature (%(platform)s)") % {"platform": platform.get_kind_display()},
            platform=platform,
            form=form,
            found=found,
            error=error,
            action_url=admin_url(
                self.admin_site, "space_test_signature", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, self.signature_tester_template, context, status=status)
        add_never_cache_headers(response)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response
