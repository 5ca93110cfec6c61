"""The Trusted Identity page of a space, and the views behind its buttons: the page
itself (figures, chart, secrets masked), Reveal, Rotate and the enforcement switch,
with their URLs under the space's admin URL. It is a mixin that ``SpaceAdmin`` uses,
kept in its own module because it is the largest and most sensitive part of the
console: each view checks ``permissions(request)``, calls the service that reveals,
rotates or switches enforcement (and writes the audit entry), and words the outcome;
the readiness rule and the override's reason are the service's. URL names, paths and
templates are those the templates, tests and docs rely on.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from .. import services
from ..conf import app_settings
from ..exceptions import InvalidRequest, TrustedIdentityError
from ..exceptions import PermissionDenied as ServicePermissionDenied
from ..forms import (
    DEFAULT_GRACE,
    GRACE_CHOICES,
    EnforcementForm,
    RotationForm,
    SignatureFormForm,
    compact_duration,
)
from ..models import Platform, PlatformKind, Role, Space
from ..services import NotReady
from .base import actor, admin_url, permissions, space_page_url
from .display import (
    KIND_ORDER,
    chart,
    current_secret_since,
    percent,
    previous_valid_until,
    revocation_message,
    rotation_message,
)
from .rollout import diagnostics, summary

CHART_DAYS = 7


class SpaceSettingsPageMixin:
    """The Trusted Identity page of a space and its Reveal, Rotate and enforcement views."""

    settings_template = "trusted_identity/admin/space_settings.html"
    rotate_template = "trusted_identity/admin/rotate_confirm.html"
    enforcement_template = "trusted_identity/admin/enforcement_confirm.html"
    revoke_previous_template = "trusted_identity/admin/revoke_previous_confirm.html"

    def get_urls(self) -> list[URLPattern | URLResolver]:
        return [
            space_page_url(self, "", self.settings_view, "trusted_identity"),
            space_page_url(self, "<str:kind>/reveal/", self.reveal_view, "reveal_secret"),
            space_page_url(self, "<str:kind>/rotate/", self.rotate_view, "rotate_secret"),
            space_page_url(
                self, "<str:kind>/revoke-previous/", self.revoke_previous_view, "revoke_previous"
            ),
            space_page_url(self, "<str:kind>/enforcement/", self.enforcement_view, "enforcement"),
            *super().get_urls(),
        ]

    def _space_or_404(self, request: HttpRequest, object_id: str) -> Space:
        space = self.get_object(request, unquote(object_id))
        if space is None:  # not there, or not one of the user's spaces: the same answer
            raise Http404(_("No such space."))
        return space

    def _platform_or_404(self, space: Space, kind: str) -> Platform:
        if kind not in PlatformKind.values:  # also keeps odd input (NUL) out of the query
            raise Http404(_("This space has no such platform."))
        platform = Platform.objects.select_related("space").filter(space=space, kind=kind).first()
        if platform is None:
            raise Http404(_("This space has no such platform."))
        return platform

    def _settings_url(self, space: Space, platform: Platform | None = None) -> str:
        url = admin_url(self.admin_site, "space_trusted_identity", quote(space.pk))
        return f"{url}#platform-{platform.kind}" if platform is not None else url

    def _context(self, request: HttpRequest, space: Space, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "space": space,
            "original": space,
            "has_view_permission": True,
            "settings_url": self._settings_url(space),
            "change_url": admin_url(self.admin_site, "space_change", quote(space.pk)),
            **extra,
        }

    def settings_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
        space = self._space_or_404(request, object_id)
        return self._render_settings(request, space)

    @sensitive_variables("revealed", "sections", "context", "response")
    def _render_settings(
        self, request: HttpRequest, space: Space, revealed: dict[int, str] | None = None
    ) -> TemplateResponse:
        perms = permissions(request)
        now = timezone.now()
        platforms = sorted(
            Platform.objects.filter(space=space).annotate(
                ti_last_rotated_at=current_secret_since(),
                ti_previous_valid_until=previous_valid_until(now),
            ),
            key=lambda p: KIND_ORDER.get(p.kind, 99),
        )
        ids = [p.pk for p in platforms]
        figures = services.figures_for(ids)
        rollout = diagnostics(platforms, figures)  # versions, reasons, secret use, failures
        daily = services.daily_figures(ids, days=CHART_DAYS)
        origins = services.origins_by_platform(ids)  # CORS, web platforms only
        revealed = revealed or {}
        sections = []
        for platform in platforms:
            info = (quote(space.pk), platform.kind)
            sections.append(
                {
                    **rollout[platform.pk],
                    "platform": platform,
                    "figures": figures[platform.pk],
                    "ready": figures[platform.pk].is_ready(),
                    "share": percent(figures[platform.pk].valid_share),
                    "chart": chart(daily[platform.pk]),
                    "secret": revealed.get(platform.pk),
                    "reveal_url": admin_url(self.admin_site, "space_reveal_secret", *info),
                    "rotate_url": admin_url(self.admin_site, "space_rotate_secret", *info),
                    "enforcement_url": admin_url(self.admin_site, "space_enforcement", *info),
                    "origins": origins.get(platform.pk, []),
                    "origins_url": admin_url(self.admin_site, "space_origins", *info),
                    "signature_form_url": admin_url(self.admin_site, "space_signature_form", *info),
                    "token_max_age": compact_duration(platform.token_max_age),
                    "change_url": admin_url(self.admin_site, "platform_change", quote(platform.pk)),
                    "previous_secrets": [
                        s for s in rollout[platform.pk]["secret_usage"] if not s.is_current
                    ],
                    "revoke_previous_url": admin_url(
                        self.admin_site, "space_revoke_previous", *info
                    ),
                    "history_url": admin_url(
                        self.admin_site, "platform_history", quote(platform.pk)
                    ),
                }
            )
        missing_kinds = [
            label for kind, label in PlatformKind.choices if kind not in {p.kind for p in platforms}
        ]
        role = perms.role(space)
        context = self._context(
            request,
            space,
            title=_("Trusted Identity: %(space)s") % {"space": space},
            platforms=sections,
            summary=summary(platforms, figures),
            revealed=bool(revealed),
            can_reveal=perms.can("reveal", space),
            can_rotate=perms.can("rotate", space),
            can_enforce=perms.can("enforce", space),
            role_label=Role(role).label if role else (_("superuser") if perms.superuser else ""),
            grace_choices=GRACE_CHOICES,
            signature_form_choices=SignatureFormForm.base_fields["form"].choices,
            default_grace=DEFAULT_GRACE,
            threshold=percent(app_settings.READINESS_THRESHOLD),
            min_starts=app_settings.READINESS_MIN_STARTS,
            window_days=app_settings.READINESS_WINDOW.days,
            chart_days=CHART_DAYS,
            retention=services.retention_state(),
            add_platform_url=(
                admin_url(self.admin_site, "platform_add", query=f"space={space.pk}")
                if missing_kinds and perms.can("rotate", space)
                else ""
            ),
            platforms_url=admin_url(
                self.admin_site, "platform_changelist", query=f"space={space.pk}"
            ),
        )
        request.current_app = self.admin_site.name
        response = TemplateResponse(request, self.settings_template, context)
        add_never_cache_headers(response)
        if revealed:
            # Render here, inside the sensitive frame, and drop the context holding the secret.
            response.render()
            response.context_data = None
        return response

    @sensitive_variables("plaintext")
    def reveal_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        if request.method != "POST":
            return HttpResponseRedirect(self._settings_url(space, platform))
        if not permissions(request).can("reveal", space):
            raise PermissionDenied
        try:
            plaintext = services.reveal_secret(platform, actor(request))
        except ServicePermissionDenied:
            raise PermissionDenied from None
        except TrustedIdentityError as exc:
            messages.error(request, exc.message)
            return HttpResponseRedirect(self._settings_url(space, platform))
        messages.warning(
            request,
            _(
                "You revealed the current %(platform)s secret; this is recorded in the "
                "platform's history. It is hidden again when you reload or leave this page."
            )
            % {"platform": platform.get_kind_display()},
        )
        response = self._render_settings(request, space, revealed={platform.pk: plaintext})
        add_never_cache_headers(response)  # no-store: the secret must not be kept anywhere
        response["Pragma"] = "no-cache"
        return response

    def rotate_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        if not permissions(request).can("rotate", space):
            raise PermissionDenied
        if request.method == "POST":
            form = RotationForm(request.POST)
        else:
            form = RotationForm(request.GET if "grace" in request.GET else None)
        if request.method == "POST" and request.POST.get("post") == "yes" and form.is_valid():
            grace = form.cleaned_data["grace"]
            try:
                services.rotate_secret(platform, actor(request), grace)
            except ServicePermissionDenied:
                raise PermissionDenied from None
            except TrustedIdentityError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, rotation_message([platform], grace))
            return HttpResponseRedirect(self._settings_url(space, platform))
        context = self._context(
            request,
            space,
            title=_("Rotate the %(platform)s secret?") % {"platform": platform.get_kind_display()},
            platform=platform,
            form=form,
            previous_valid_until=services.previous_secret_valid_until(platform),
            action_url=admin_url(
                self.admin_site, "space_rotate_secret", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.rotate_template, context)

    def revoke_previous_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        """End every previous secret's grace now, after a confirmation page (GET shows it)."""
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        if not permissions(request).can("rotate", space):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("post") == "yes":
            try:
                ended = services.revoke_previous(platform, actor(request))
            except ServicePermissionDenied:
                raise PermissionDenied from None
            except TrustedIdentityError as exc:
                messages.error(request, exc.message)
            else:
                if ended:
                    messages.success(request, revocation_message(platform, ended))
                else:
                    messages.info(
                        request,
                        _("No previous %(platform)s secret was verifying: nothing changed.")
                        % {"platform": platform.get_kind_display()},
                    )
            return HttpResponseRedirect(self._settings_url(space, platform))
        previous = [
            s for s in services.verifying_secrets([platform.pk])[platform.pk] if not s.is_current
        ]
        context = self._context(
            request,
            space,
            title=_("End the grace of the previous %(platform)s secrets now?")
            % {"platform": platform.get_kind_display()},
            platform=platform,
            previous_secrets=previous,
            action_url=admin_url(
                self.admin_site, "space_revoke_previous", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.revoke_previous_template, context)

    def enforcement_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        space = self._space_or_404(request, object_id)
        platform = self._platform_or_404(space, kind)
        if not permissions(request).can("enforce", space):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        form = EnforcementForm(data)
        if not form.is_valid() and form.has_error("enabled"):
            messages.error(request, _("Choose whether to turn enforcement on or off."))
            return HttpResponseRedirect(self._settings_url(space, platform))
        enabled = form.cleaned_data["enabled"]
        platform_label = platform.get_kind_display()
        if platform.enforced == enabled:
            messages.info(
                request,
                (
                    _("Enforcement is already on for %(platform)s.")
                    if enabled
                    else _("Enforcement is already off for %(platform)s.")
                )
                % {"platform": platform_label},
            )
            return HttpResponseRedirect(self._settings_url(space, platform))
        figures = services.readiness(platform)
        ready = figures.is_ready()
        confirmed = request.method == "POST" and request.POST.get("post") == "yes"
        if confirmed and form.is_valid():
            override = form.cleaned_data["override"]
            reason = form.cleaned_data["reason"]
            # The readiness rule and its override are the service's; the admin only
            # words its refusals for the form.
            try:
                services.set_enforcement(
                    platform, enabled, actor(request), force=override, reason=reason
                )
            except ServicePermissionDenied:
                raise PermissionDenied from None
            except NotReady as exc:  # not ready (the figures may have changed since)
                figures, ready = exc.figures, False
                form.add_error(
                    "override",
                    _(
                        "Signing is not rolled out far enough. Tick the override box to turn "
                        "enforcement on anyway."
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
                    (
                        _(
                            "Enforcement is now on for %(platform)s: identified session "
                            "starts without a valid signature are rejected."
                        )
                        if enabled
                        else _(
                            "Enforcement is now off for %(platform)s: session starts are "
                            "accepted whatever their signature, and counted."
                        )
                    )
                    % {"platform": platform_label},
                )
                return HttpResponseRedirect(self._settings_url(space, platform))
        title = (
            _("Turn on enforcement for %(platform)s?")
            if enabled
            else _("Turn off enforcement for %(platform)s?")
        ) % {"platform": platform_label}
        context = self._context(
            request,
            space,
            title=title,
            platform=platform,
            form=form,
            enabling=enabled,
            figures=figures,
            share=percent(figures.valid_share),
            ready=ready,
            needs_override=enabled and not ready,
            threshold=percent(app_settings.READINESS_THRESHOLD),
            min_starts=app_settings.READINESS_MIN_STARTS,
            window_days=app_settings.READINESS_WINDOW.days,
            action_url=admin_url(
                self.admin_site, "space_enforcement", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.enforcement_template, context)
