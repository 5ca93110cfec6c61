"""The allowed origins (CORS) of a web platform, on its space's Trusted Identity page.

:class:`OriginsView` takes a POST with ``action`` (``allow`` or ``deny``) and ``origin``.
It needs the origins permission in the space, then calls ``origins.allow_origin`` or
``origins.deny_origin``, which validate, audit and make every serving process see the
change; this module only words the outcome:

- an origin allowed: back to the platform's section, the message drawn there;
- an origin refused: the page again, the typed value kept in the field and the reason
  beside it (an error message far from the field, and an empty field, explain nothing);
- a removal: a confirmation page first (GET, or a POST without ``post=yes``), as
  Django's admin confirms a deletion.

The list itself is shown by the settings page's ``includes/origins.html``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import TrustedIdentityError
from ..forms import OriginForm
from ..models import PlatformKind
from ..services import origins
from .settings_page import SpaceSettingsView
from .views import PlatformActionView


class OriginsView(PlatformActionView, SpaceSettingsView):
    """Allow one origin of a web platform, or remove one after a confirmation."""

    permission = origins.ORIGINS_PERMISSION
    http_method_names = ["get", "head", "post"]
    crumb = gettext_lazy("Remove an allowed origin")
    confirm_template = "trusted_identity/admin/origin_remove_confirm.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.GET.get("action") == "deny":
            return self.confirm_removal(request.GET.get("origin", ""))
        return self.back()

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = OriginForm(request.POST)
        action = request.POST.get("action")
        if action == "deny" and request.POST.get("post") != "yes":
            return self.confirm_removal(request.POST.get("origin", ""))
        if not form.is_valid():
            if action == "allow" and not form.has_error("action"):
                return self.refused(form.data.get("origin", ""), form.errors["origin"])
            for errors in form.errors.values():
                for error in errors:
                    self.notify(messages.ERROR, error)
            return self.back()
        origin = form.cleaned_data["origin"]
        try:
            if form.cleaned_data["action"] == "allow":
                origin, added = origins.allow_origin(self.platform, origin, self.actor())
                message = (
                    _("Pages of %(origin)s may now start %(platform)s sessions from the browser.")
                    if added
                    else _(
                        "The origin %(origin)s was already allowed for %(platform)s; "
                        "nothing changed."
                    )
                )
            else:
                origin = origins.deny_origin(self.platform, origin, self.actor())
                message = _(
                    "Pages of %(origin)s may no longer start %(platform)s sessions from the "
                    "browser."
                )
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:
            if form.cleaned_data["action"] == "allow":
                return self.refused(form.data.get("origin", ""), [exc.message])
            self.notify(messages.ERROR, exc.message)
        else:
            self.notify(
                messages.SUCCESS, message % {"origin": origin, "platform": self.platform_label}
            )
        return self.back()

    def refused(self, typed: str, errors: list[str]) -> HttpResponse:
        """The page again, the typed origin in its field and why beside it; a platform
        without the field (not web) gets the reason in its section instead."""
        if self.platform.kind != PlatformKind.WEB:
            for error in errors:
                self.notify(messages.ERROR, error)
            return self.back()
        return self.render_page(
            section_extra={self.platform.pk: {"origin_typed": typed, "origin_errors": errors}}
        )

    def confirm_removal(self, origin: str) -> HttpResponse:
        """Django's deletion pattern: say what stops working, then a POST with ``post=yes``."""
        if origin not in origins.allowed_origins(self.platform):
            self.notify(
                messages.ERROR,
                _(
                    "The origin %(origin)s is not an allowed origin of %(platform)s: "
                    "nothing to remove."
                )
                % {"origin": origin, "platform": self.platform_label},
            )
            return self.back()
        self.template_name = self.confirm_template
        return self.render_to_response(self.get_context_data(origin=origin))

    def get_title(self) -> str:
        if self.template_name == self.confirm_template:
            return _("Remove an allowed origin of %(platform)s?") % {
                "platform": self.platform_label
            }
        return super().get_title()
