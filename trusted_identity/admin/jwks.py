"""A platform's JWKS URL on its space's Trusted Identity page.

:class:`JwksView` takes a POST with ``action``: ``set`` (with ``url``: fetched at once,
refused with the fetch's error and nothing stored when it has no usable set; the page
comes back with the typed URL kept and the reason beside it), ``refresh`` (fetch it
again now) or ``clear`` (after a confirmation page, as removing an origin is). It needs
the ``rotate`` permission in the space, as keys do; ``services.jwks`` checks it again,
writes the audit entry and makes every serving process see the change. This module
only words the outcome.

The page draws the state with ``trusted_identity/admin/_jwks.html``, from the context
``jwks_section.jwks_sections`` gives each platform's section (its ``jwks`` item).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import TrustedIdentityError
from ..jwksfetch import MAX_URL_LENGTH
from ..services import jwks, public_keys
from .settings_page import SpaceSettingsView
from .views import PlatformActionView


class JwksForm(forms.Form):
    """What the JWKS buttons post; ``services.jwks`` checks the URL itself."""

    action = forms.ChoiceField(
        choices=[("set", _("Set")), ("refresh", _("Fetch again")), ("clear", _("Remove"))]
    )
    url = forms.CharField(label=_("JWKS URL"), max_length=MAX_URL_LENGTH, required=False)


class JwksView(PlatformActionView, SpaceSettingsView):
    """Set, fetch again or remove a platform's JWKS URL."""

    permission = "rotate"
    http_method_names = ["get", "head", "post"]
    crumb = gettext_lazy("Remove the JWKS URL")
    confirm_template = "trusted_identity/admin/jwks_clear_confirm.html"

    def get_title(self) -> str:
        if self.template_name == self.confirm_template:
            return _("Remove the JWKS URL of %(platform)s?") % {"platform": self.platform_label}
        return super().get_title()

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.GET.get("action") == "clear":
            return self.confirm_clear()
        return self.back()  # changes only on an explicit POST

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = JwksForm(request.POST)
        if not form.is_valid():
            if form.has_error("url"):
                return self.refused(request.POST.get("url", ""), form.errors["url"])
            self.notify(messages.ERROR, _("Choose to set, fetch again or remove the JWKS URL."))
            return self.back()
        action, url = form.cleaned_data["action"], form.cleaned_data["url"]
        if action == "clear" and request.POST.get("post") != "yes":
            return self.confirm_clear()
        try:
            if action == "set":
                jwks.set_jwks_url(self.platform, url, self.actor())
            elif action == "clear":
                cleared = jwks.clear_jwks_url(self.platform, self.actor())
            else:
                done = jwks.refresh_jwks(self.platform, self.actor())
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:
            if action == "set":
                return self.refused(url, [exc.message])
            self.notify(messages.ERROR, exc.message)
            return self.back()
        words = {"platform": self.platform_label}
        if action == "set":
            self.notify(
                messages.SUCCESS,
                _("%(platform)s now also verifies with the keys of its JWKS URL.") % words,
            )
        elif action == "clear":
            self.cleared(cleared)
        else:
            self.refreshed(done)
        return self.back()

    def cleared(self, cleared: bool) -> None:
        words = {"platform": self.platform_label}
        if not cleared:
            self.notify(messages.INFO, _("%(platform)s had no JWKS URL; nothing changed.") % words)
            return
        self.notify(messages.SUCCESS, _("%(platform)s no longer verifies with a JWKS URL.") % words)
        if self.platform.key_source != "secret" and not public_keys.has_public_keys(self.platform):
            self.notify(
                messages.WARNING,
                _("%(platform)s has no public key that verifies left.") % words,
            )

    def refreshed(self, done: jwks.Refresh) -> None:
        words = {"platform": self.platform_label, "error": done.error}
        if not done.fetched:
            self.notify(
                messages.WARNING,
                _("Another process is fetching the %(platform)s JWKS right now: try again.")
                % words,
            )
        elif done.error:
            self.notify(
                messages.ERROR,
                _("Fetching the %(platform)s JWKS failed: %(error)s. Its last good set is kept.")
                % words,
            )
        elif done.changed:
            self.notify(
                messages.SUCCESS,
                _("Fetched the %(platform)s JWKS: a new key set, in use within a second.") % words,
            )
        else:
            self.notify(messages.INFO, _("Fetched the %(platform)s JWKS: no change.") % words)

    def refused(self, typed: str, errors: list[str]) -> HttpResponse:
        """The page again, the typed URL in its field and why beside it."""
        extra = {"jwks_typed": typed[:MAX_URL_LENGTH], "jwks_errors": errors}
        return self.render_page(section_extra={self.platform.pk: extra})

    def confirm_clear(self) -> HttpResponse:
        """Django's deletion pattern: say what stops verifying, then a POST with ``post=yes``."""
        state = jwks.jwks_state(self.platform)
        if state is None:
            self.notify(
                messages.INFO,
                _("%(platform)s has no JWKS URL: nothing to remove.")
                % {"platform": self.platform_label},
            )
            return self.back()
        self.template_name = self.confirm_template
        return self.render_to_response(self.get_context_data(jwks=state))
