"""A platform's public keys, on its space's Trusted Identity page (CONTRACT section 10).

:class:`PublicKeysView` takes a POST with ``action``:

- ``add``, with ``key`` (PEM or JWK, pasted), an optional ``kid`` and ``expires``
  (``90d``): ``public_keys.add_public_key`` reads the key and refuses a private, weak
  or unsupported one, a fourth active key, a kid or a key already there, with nothing
  stored. A refusal draws the page again with the reason beside the form and the typed
  kid and expiry kept, but **the key field empty**: a private key pasted by mistake is
  never sent back, and never logged (``key`` is a sensitive POST parameter, so Django's
  error reports hide it too);
- ``expire`` or ``remove``, with ``kid``: a confirmation page first (GET, or a POST
  without ``post=yes``), as Django confirms a deletion, saying what stops verifying and
  whether the key is still in use.

It needs the ``rotate`` permission in the space (owners and admins), as the service
checks again; the service audits each change and makes every process see it within a
second. This module words the outcome. The list itself is drawn by the settings page
(``key_sections``, ``includes/public_keys.html``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters

from ..dbclock import database_now
from ..exceptions import TrustedIdentityError
from ..formatting import moment
from ..forms import KeyActionForm, PublicKeyForm
from ..models import KeySource
from ..publickeys import MAX_KID_LENGTH
from ..publickeys import PublicKey as ParsedKey
from ..services import public_keys
from .settings_page import SpaceSettingsView
from .views import PlatformActionView

#: The permission adding, expiring and removing keys needs (``services.public_keys``).
KEYS_PERMISSION = "rotate"
#: The typed kid and expiry a refused form keeps, at most this long each.
TYPED_MAX = MAX_KID_LENGTH


class PublicKeysView(PlatformActionView, SpaceSettingsView):
    """Add a public key, or expire or remove one after a confirmation."""

    permission = KEYS_PERMISSION
    http_method_names = ["get", "head", "post"]
    confirm_template = "trusted_identity/admin/public_key_confirm.html"

    @method_decorator(sensitive_post_parameters("key"))
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().dispatch(request, *args, **kwargs)

    @property
    def crumb(self) -> str:  # type: ignore[override]
        action = getattr(self, "action", "")  # none: the page itself, a refused key
        if action == "expire":
            return _("Expire a public key")
        return _("Remove a public key") if action == "remove" else ""

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = KeyActionForm(request.GET)
        if form.is_valid():
            return self.confirm(form.cleaned_data["action"], form.cleaned_data["kid"])
        return self.back()

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.POST.get("action") == "add":
            return self.add(PublicKeyForm(request.POST))
        form = KeyActionForm(request.POST)
        if not form.is_valid():
            self.notify(messages.ERROR, _("Choose a public key to expire or remove."))
            return self.back()
        action, kid = form.cleaned_data["action"], form.cleaned_data["kid"]
        if request.POST.get("post") != "yes":
            return self.confirm(action, kid)
        try:
            if action == "expire":
                public_keys.expire_public_key(self.platform, kid, self.actor())
            else:
                public_keys.remove_public_key(self.platform, kid, self.actor())
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:
            self.notify(messages.ERROR, exc.message)
            return self.back()
        words = {
            "expire": _(
                "Public key %(kid)s of %(platform)s has expired: tokens that name it count as "
                "key_expired from now on. It stays listed until you remove it."
            ),
            "remove": _(
                "Public key %(kid)s was removed from %(platform)s: tokens it signed no longer "
                "verify (they count as unknown_key)."
            ),
        }[action]
        self.notify(messages.SUCCESS, words % {"kid": repr(kid), "platform": self.platform_label})
        if not public_keys.has_public_keys(self.platform) and (
            self.platform.key_source != KeySource.SECRET
        ):
            self.notify(
                messages.WARNING,
                _(
                    "%(platform)s has no public key that verifies left: every public-key "
                    "token is now invalid. Add a key."
                )
                % {"platform": self.platform_label},
            )
        return self.back()

    def add(self, form: PublicKeyForm) -> HttpResponse:
        """Add the pasted key; refused, the page again with the reason and without it."""
        if not form.is_valid():
            return self.refused(form)
        expires = form.cleaned_data["expires"]
        try:
            row = public_keys.add_public_key(
                self.platform,
                form.cleaned_data["key"],
                self.actor(),
                kid=form.cleaned_data["kid"],
                expires_at=None if expires is None else database_now() + expires,
            )
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:  # the service's words, never the input's
            form.add_error("key", exc.message)
            return self.refused(form)
        parsed = ParsedKey.from_der(bytes(row.spki))
        message = _("Added public key %(kid)s to %(platform)s (%(key)s, %(alg)s, %(fp)s).") % {
            "kid": repr(row.kid),
            "platform": self.platform_label,
            "key": parsed.description,
            "alg": parsed.alg,
            "fp": parsed.fingerprint,
        }
        if row.expires_at is not None:
            message += " " + _("It expires %(when)s.") % {"when": moment(row.expires_at)}
        if self.platform.key_source == KeySource.SECRET:
            message += " " + _(
                "This platform verifies its secret only: its public-key tokens count as "
                "form_not_allowed until its key source takes public keys."
            )
        self.notify(messages.SUCCESS, message)
        return self.back()

    def refused(self, form: PublicKeyForm) -> HttpResponse:
        """The page again: the errors beside the add form, the typed kid and expiry kept
        (cut short), the key field empty whatever was pasted."""
        errors = [str(error) for error in form.non_field_errors()]
        for field in ("key", "kid", "expires"):
            errors += [str(error) for error in form.errors.get(field, [])]
        typed = {
            field: str(form.data.get(field, ""))[:TYPED_MAX].replace("\x00", "")
            for field in ("kid", "expires")
        }
        return self.render_page(
            section_extra={self.platform.pk: {"key_errors": errors, "key_typed": typed}}
        )

    def confirm(self, action: str, kid: str) -> HttpResponse:
        """Django's deletion pattern: say what stops verifying, then a POST with ``post=yes``."""
        self.action = action
        keys = public_keys.public_keys_of(self.platform)
        key = next((k for k in keys if k.kid == kid), None)
        if key is None or (action == "expire" and not key.active):
            message = (
                _("%(platform)s has no public key with the kid %(kid)s: nothing to do.")
                if key is None
                else _("Public key %(kid)s of %(platform)s has already expired.")
            )
            self.notify(
                messages.ERROR, message % {"platform": self.platform_label, "kid": repr(kid)}
            )
            return self.back()
        others = [k for k in keys if k.active and k.kid != kid]
        self.template_name = self.confirm_template
        return self.render_to_response(
            self.get_context_data(
                action=action,
                key=key,
                last_key=key.active and not others,
                key_source=self.platform.key_source,
            )
        )

    def get_title(self) -> str:
        if self.template_name != self.confirm_template:
            return super().get_title()
        title = (
            _("Expire a public key of %(platform)s?")
            if self.action == "expire"
            else _("Remove a public key of %(platform)s?")
        )
        return title % {"platform": self.platform_label}
