"""The allowed origins (CORS) of a web platform, on its space's Trusted Identity page.

:class:`OriginsView` takes a POST with ``action`` (``allow`` or ``deny``) and ``origin``
(a GET only returns to the page). It needs the origins permission in the space, then
calls ``origins.allow_origin`` or ``origins.deny_origin``, which validate, audit and
make every serving process see the change; this module only words the outcome. The list
itself is shown by the settings page's ``includes/origins.html``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from ..exceptions import TrustedIdentityError
from ..forms import OriginForm
from ..services import origins
from .views import PlatformActionView


class OriginsView(PlatformActionView):
    """Allow or remove one origin of a web platform."""

    permission = origins.ORIGINS_PERMISSION

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.back()

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = OriginForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return self.back()
        origin = form.cleaned_data["origin"]
        try:
            if form.cleaned_data["action"] == "allow":
                origin, added = origins.allow_origin(self.platform, origin, self.actor())
                message = (
                    _("Pages of %(origin)s may now start %(platform)s sessions from the browser.")
                    if added
                    else _("%(origin)s was already allowed for %(platform)s; nothing changed.")
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
            messages.error(request, exc.message)
        else:
            messages.success(request, message % {"origin": origin, "platform": self.platform_label})
        return self.back()
