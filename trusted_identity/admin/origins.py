"""The allowed origins (CORS) of a web platform, on its space's Trusted Identity page.

``SpaceOriginsMixin`` adds one URL under the page, ``<space>/trusted-identity/<kind>/
origins/``, taking a POST with ``action`` (``allow`` or ``deny``) and ``origin``. It
checks the role ("enforce" in the space), then calls ``services.allow_origin`` or
``services.deny_origin``, which validate, audit and make every serving process see
the change; this module only words the outcome. The list itself is shown by the
settings page's ``includes/origins.html``.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver
from django.utils.translation import gettext as _

from .. import services
from ..exceptions import PermissionDenied as ServicePermissionDenied
from ..exceptions import TrustedIdentityError
from ..forms import OriginForm
from .base import actor, permissions, space_page_url


class SpaceOriginsMixin:
    """Allow and remove a web platform's origins from the space's Trusted Identity page.

    Used by ``SpaceAdmin`` before ``SpaceSettingsPageMixin``, whose helpers it uses.
    """

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            space_page_url(self, "<str:kind>/origins/", self.origins_view, "origins"),
            *super().get_urls(),
        ]

    def origins_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        back = HttpResponseRedirect(self._settings_url(space, platform))
        if request.method != "POST":
            return back
        if not permissions(request).can(services.origins.ORIGINS_PERMISSION, space):
            raise PermissionDenied
        form = OriginForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return back
        origin = form.cleaned_data["origin"]
        try:
            if form.cleaned_data["action"] == "allow":
                origin, added = services.allow_origin(platform, origin, actor(request))
                message = (
                    _("Pages of %(origin)s may now start %(platform)s sessions from the browser.")
                    if added
                    else _("%(origin)s was already allowed for %(platform)s; nothing changed.")
                )
            else:
                origin = services.deny_origin(platform, origin, actor(request))
                message = _(
                    "Pages of %(origin)s may no longer start %(platform)s sessions from the "
                    "browser."
                )
        except ServicePermissionDenied:
            raise PermissionDenied from None
        except TrustedIdentityError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request, message % {"origin": origin, "platform": platform.get_kind_display()}
            )
        return back
