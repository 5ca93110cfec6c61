"""Changing which signature forms a platform accepts, from its space's Trusted Identity page.

A mixin of ``SpaceAdmin`` beside :class:`~.settings_page.SpaceSettingsPageMixin`, whose
helpers it uses: one URL under the space's admin URL, whose GET (or a POST without
``post=yes``) shows a confirmation page and whose confirmed POST calls
``services.set_signature_form``. The permission (``enforce``), the readiness rule for
``token``, its override and the audit entry are the service's; this module words them.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver
from django.utils.translation import gettext as _

from .. import services
from ..conf import app_settings
from ..exceptions import InvalidRequest, TrustedIdentityError
from ..exceptions import PermissionDenied as ServicePermissionDenied
from ..forms import SignatureFormForm, compact_duration
from ..models import SignatureForm
from .base import actor, admin_url, permissions, space_page_url
from .display import percent


class SignatureFormPageMixin:
    """The confirmation page that changes a platform's accepted signature forms."""

    signature_form_template = "trusted_identity/admin/signature_form_confirm.html"

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            space_page_url(
                self, "<str:kind>/signature-form/", self.signature_form_view, "signature_form"
            ),
            *super().get_urls(),
        ]

    def signature_form_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        if not permissions(request).can("enforce", space):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        form = SignatureFormForm(data)
        if not form.is_valid() and form.has_error("form"):
            messages.error(request, _("Choose which signatures the platform accepts."))
            return HttpResponseRedirect(self._settings_url(space, platform))
        chosen = form.cleaned_data["form"]
        max_age = form.cleaned_data.get("max_age")
        seconds = None if max_age is None else int(max_age.total_seconds())
        if chosen == platform.signature_form and seconds == platform.token_max_age:
            messages.info(
                request,
                _("Nothing changed: %(platform)s already accepts these signatures.")
                % {"platform": platform.get_kind_display()},
            )
            return HttpResponseRedirect(self._settings_url(space, platform))
        usage = services.token_usage(platform)
        needs_override = services.needs_override(platform.signature_form, chosen, usage)
        confirmed = request.method == "POST" and request.POST.get("post") == "yes"
        if confirmed and form.is_valid():
            try:
                services.set_signature_form(
                    platform,
                    chosen,
                    actor(request),
                    max_age=max_age,
                    force=form.cleaned_data["override"],
                    reason=form.cleaned_data["reason"],
                )
            except ServicePermissionDenied:
                raise PermissionDenied from None
            except services.TokenNotReady:
                form.add_error(
                    "override",
                    _(
                        "Tokens are not rolled out far enough. Tick the override box to accept "
                        "only tokens anyway."
                    ),
                )
            except InvalidRequest:  # an override without a reason
                form.add_error("reason", _("Give the reason for the override."))
            except TrustedIdentityError as exc:
                messages.error(request, exc.message)
                return HttpResponseRedirect(self._settings_url(space, platform))
            else:
                messages.success(
                    request,
                    _("%(platform)s now accepts: %(form)s. A token may live at most %(age)s.")
                    % {
                        "platform": platform.get_kind_display(),
                        "form": SignatureForm(chosen).label.lower(),
                        "age": services.describe_duration(
                            max_age or timedelta(seconds=platform.token_max_age)
                        ),
                    },
                )
                return HttpResponseRedirect(self._settings_url(space, platform))
        context = self._context(
            request,
            space,
            title=_("Change the signatures %(platform)s accepts?")
            % {"platform": platform.get_kind_display()},
            platform=platform,
            form=form,
            chosen=chosen,
            chosen_label=SignatureForm(chosen).label,
            current_label=SignatureForm(platform.signature_form).label,
            max_age_text=form.data.get("max_age") or compact_duration(platform.token_max_age),
            current_max_age=services.describe_duration(timedelta(seconds=platform.token_max_age)),
            usage=usage,
            usage_share=percent(usage.share) if usage is not None else "",
            needs_override=needs_override,
            threshold=percent(app_settings.READINESS_THRESHOLD),
            min_starts=app_settings.READINESS_MIN_STARTS,
            window_days=app_settings.READINESS_WINDOW.days,
            action_url=admin_url(
                self.admin_site, "space_signature_form", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.signature_form_template, context)
