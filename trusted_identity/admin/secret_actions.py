"""Rotating a platform's secret and ending its previous secrets' grace, from the space's
Trusted Identity page: each a confirmation page (GET) and a confirmed POST (``post=yes``)
calling the service, which checks the ``rotate`` permission again and writes the audit
entry; these views word the outcome.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import TrustedIdentityError
from ..forms import RotationForm
from ..services import durations, platform_secrets, secret_use
from .display import revocation_message, rotation_message
from .views import PlatformActionView, admin_form


class RotateSecretView(PlatformActionView):
    """Rotate the platform's secret, with the grace the previous one keeps."""

    permission = "rotate"
    crumb = gettext_lazy("Rotate secret")
    template_name = "trusted_identity/admin/rotate_confirm.html"

    def get_title(self) -> str:
        return _("Rotate the %(platform)s secret?") % {"platform": self.platform_label}

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.show(RotationForm(request.GET if "grace" in request.GET else None))

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = RotationForm(request.POST)
        if request.POST.get("post") != "yes" or not form.is_valid():
            return self.show(form)
        grace = form.cleaned_data["grace"]
        try:
            platform_secrets.rotate_secret(self.platform, self.actor(), grace)
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:
            self.notify(messages.ERROR, exc.message)
        else:
            self.notify(messages.SUCCESS, rotation_message([self.platform], grace, on_page=True))
        return self.back()

    def show(self, form: RotationForm) -> HttpResponse:
        return self.render_to_response(
            self.get_context_data(
                previous_valid_until=platform_secrets.previous_secret_valid_until(self.platform),
                **admin_form(form, [(None, {"fields": ["grace"]})], self.model_admin),
            )
        )


class RevokePreviousView(PlatformActionView):
    """End every previous secret's grace now, after a confirmation page."""

    permission = "rotate"
    crumb = gettext_lazy("End the grace now")
    template_name = "trusted_identity/admin/revoke_previous_confirm.html"

    def get_title(self) -> str:
        return _("End the grace of the previous %(platform)s secrets now?") % {
            "platform": self.platform_label
        }

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The previous secrets that would stop verifying, each with what it verified
        since the rotation (the same as the Trusted Identity page)."""
        usage = secret_use.secret_usage([self.platform.pk])[self.platform.pk]
        previous = [secret for secret in usage if not secret.is_current]
        return self.render_to_response(
            self.get_context_data(
                previous_secrets=previous,
                secret_usage=previous,
                in_use=[s for s in previous if not s.safe_to_end],
                users_in_use=sum(s.users_since_retired for s in previous if not s.safe_to_end),
                quiet_period=durations.describe_duration(secret_use.SECRET_QUIET_PERIOD),
            )
        )

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("post") != "yes":
            return self.get(request, *args, **kwargs)
        try:
            ended = platform_secrets.revoke_previous(self.platform, self.actor())
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:
            self.notify(messages.ERROR, exc.message)
        else:
            if ended:
                self.notify(messages.SUCCESS, revocation_message(self.platform, ended))
            else:
                self.notify(
                    messages.INFO,
                    _("No previous %(platform)s secret was verifying: nothing changed.")
                    % {"platform": self.platform_label},
                )
        return self.back()
