"""The Trusted Identity page of a space (figures, chart, secrets masked, the buttons of
each platform) and its Reveal button, whose answer is the page itself with the secret.

It is the most sensitive page of the console: the reveal checks the ``reveal``
permission (the view's own, then the service's), the service writes the audit entry,
and the page holding the plaintext is rendered inside a ``sensitive_variables`` frame,
never cached, its context dropped. The other buttons are in ``secret_actions``,
``enforcement``, ``signature_forms``, ``origins``, ``signature_tester``,
``key_sources`` and ``public_keys`` (what each section shows of its keys:
``key_sections``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_variables

from ..conf import app_settings
from ..exceptions import TrustedIdentityError
from ..forms import DEFAULT_GRACE, GRACE_CHOICES, SignatureFormForm, compact_duration
from ..models import Platform, PlatformKind, Role
from ..services import platform_secrets, retention
from ..services.figures import daily_figures, figures_for
from ..services.origins import origins_by_platform
from .base import admin_url, permissions
from .display import KIND_ORDER, chart, current_secret_since, percent, previous_valid_until
from .jwks_section import jwks_sections
from .key_sections import KEY_SOURCE_CHOICES, key_sections
from .rollout import diagnostics, summary
from .views import PlatformActionView, SpaceView, platform_message_tag

CHART_DAYS = 7


def split_messages(request: HttpRequest, kinds: set[str]) -> tuple[list[Any], dict[str, list]]:
    """The request's messages: those for the top of the page, and those about one
    platform (``views.platform_message_tag``), drawn in that platform's section."""
    page: list[Any] = []
    by_kind: dict[str, list[Any]] = {}
    for message in messages.get_messages(request):
        kind = next(
            (k for k in kinds if platform_message_tag(k) in (message.extra_tags or "").split()),
            None,
        )
        if kind is None:
            page.append(message)
        else:
            by_kind.setdefault(kind, []).append(message)
    return page, by_kind


class SpaceSettingsView(SpaceView):
    """The Trusted Identity page of a space: every platform the user's role may see."""

    template_name = "trusted_identity/admin/space_settings.html"
    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.render_page()

    @sensitive_variables("revealed", "sections", "context", "response")
    def render_page(
        self,
        revealed: dict[int, str] | None = None,
        section_extra: dict[int, dict[str, Any]] | None = None,
    ) -> TemplateResponse:
        """The page; with ``revealed`` (platform id to plaintext), rendered here, inside
        the sensitive frame, and its context dropped so nothing keeps the secret.
        ``section_extra`` (platform id to context) adds to a platform's section, as a
        refused form's typed value and errors."""
        request, space = self.request, self.space
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
        figures = figures_for(ids)
        rollout = diagnostics(platforms, figures)  # versions, reasons, secret use, failures
        daily = daily_figures(ids, days=CHART_DAYS)
        origins = origins_by_platform(ids)  # CORS, web platforms only
        keys = key_sections(self.admin_site, space, platforms, figures)  # public keys
        jwks = jwks_sections(self.admin_site, space, platforms)  # the JWKS URLs
        revealed = revealed or {}
        sections = []
        for platform in platforms:
            info = (quote(space.pk), platform.kind)
            sections.append(
                {
                    **rollout[platform.pk],
                    **keys[platform.pk],
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
                    "jwks": jwks[platform.pk],
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
                    **(section_extra or {}).get(platform.pk, {}),
                }
            )
        page_messages, section_messages = split_messages(request, {p.kind for p in platforms})
        for section in sections:
            section["messages"] = section_messages.get(section["platform"].kind, [])
        missing_kinds = [
            label for kind, label in PlatformKind.choices if kind not in {p.kind for p in platforms}
        ]
        role = perms.role(space)
        context = self.get_context_data(
            platforms=sections,
            page_messages=page_messages,
            summary=summary(platforms, figures),
            revealed=bool(revealed),
            can_reveal=perms.can("reveal", space),
            can_rotate=perms.can("rotate", space),
            can_enforce=perms.can("enforce", space),
            role_label=Role(role).label if role else (_("superuser") if perms.superuser else ""),
            grace_choices=GRACE_CHOICES,
            signature_form_choices=SignatureFormForm.base_fields["form"].choices,
            key_source_choices=KEY_SOURCE_CHOICES,
            default_grace=DEFAULT_GRACE,
            threshold=percent(app_settings.READINESS_THRESHOLD),
            min_starts=app_settings.READINESS_MIN_STARTS,
            window_days=app_settings.READINESS_WINDOW.days,
            chart_days=CHART_DAYS,
            retention=retention.retention_state(),
            add_platform_url=(
                admin_url(self.admin_site, "platform_add", query=f"space={space.pk}")
                if missing_kinds and perms.can("rotate", space)
                else ""
            ),
            platforms_url=admin_url(
                self.admin_site, "platform_changelist", query=f"space={space.pk}"
            ),
        )
        response = self.render_to_response(context)
        add_never_cache_headers(response)
        if revealed:
            # Render here, inside the sensitive frame, and drop the context holding the secret.
            response.render()
            response.context_data = None
        return response


class RevealSecretView(PlatformActionView, SpaceSettingsView):
    """Reveal a platform's current secret: a POST answered with the page showing it."""

    permission = "reveal"
    http_method_names = ["get", "head", "post"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.back()  # reveals only on an explicit POST

    @sensitive_variables("plaintext")
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            plaintext = platform_secrets.reveal_secret(self.platform, self.actor())
        except PermissionDenied:
            raise  # Django's (the service's is one): a 403
        except TrustedIdentityError as exc:
            self.notify(messages.ERROR, exc.message)
            return self.back()
        self.notify(
            messages.WARNING,
            _(
                "You revealed the current %(platform)s secret; this is recorded in the "
                "platform's history. It is hidden again when you reload or leave this page."
            )
            % {"platform": self.platform_label},
        )
        response = self.render_page(revealed={self.platform.pk: plaintext})
        add_never_cache_headers(response)  # no-store: the secret must not be kept anywhere
        response["Pragma"] = "no-cache"
        return response
