"""The admin console: spaces, platforms, memberships, and each space's Trusted Identity page.

It holds no rules of its own. Who may do what comes from ``services``
(:class:`~trusted_identity.services.Permissions`, ``restrict_to_spaces``), and every
reveal, rotation and enforcement change goes through the service layer, which
writes the audit ``LogEntry`` shown in the platform's history.

A staff user sees only the spaces they are a member of, in every list, page,
action, filter and autocomplete; superusers see all. Secrets never appear on a
list or change form: ``PlatformSecret`` is not registered, and the plaintext is
shown only in the response to an explicit, permission-checked Reveal POST.
"""

from __future__ import annotations

from functools import update_wrapper
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Count, F, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.debug import sensitive_variables

from .. import services
from ..conf import app_settings
from ..exceptions import InvalidRequest, NotReady, TrustedIdentityError
from ..exceptions import PermissionDenied as ServicePermissionDenied
from ..forms import (
    DEFAULT_GRACE,
    GRACE_CHOICES,
    EnforcementForm,
    MembershipAddForm,
    MembershipChangeForm,
    RotationForm,
)
from ..models import (
    Outcome,
    OutcomeCount,
    Platform,
    PlatformKind,
    PlatformSecret,
    Role,
    Space,
    SpaceMembership,
)

KIND_ORDER = {kind: index for index, kind in enumerate(PlatformKind.values)}
CHART_DAYS = 7


# ------------------------------------------------------------------ helpers


def permissions(request: HttpRequest) -> services.Permissions:
    """The user's permissions, read once per request (one query) however often asked."""
    cached = getattr(request, "_trusted_identity_permissions", None)
    if cached is None or cached[0] != request.user.pk:
        cached = (request.user.pk, services.permissions_for(request.user))
        request._trusted_identity_permissions = cached
    return cached[1]


def actor(request: HttpRequest) -> services.Actor:
    return services.Actor.admin(request.user)


def _count(queryset, group: str):
    """A correlated COUNT subquery: no join, so no row multiplication between counts."""
    return Coalesce(
        Subquery(
            queryset.order_by().values(group).annotate(n=Count("pk")).values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


def _sum_outcomes(outcomes: list[str], since):
    return Coalesce(
        Subquery(
            OutcomeCount.objects.filter(
                platform=OuterRef("pk"), hour__gte=since, outcome__in=outcomes
            )
            .order_by()
            .values("platform")
            .annotate(total=Sum("count"))
            .values("total"),
        ),
        0,
    )


def _current_secret_since(platform_ref: str = "pk"):
    return Subquery(
        PlatformSecret.objects.filter(platform=OuterRef(platform_ref), retired_at__isnull=True)
        .order_by("-created_at")
        .values("created_at")[:1]
    )


def _previous_valid_until(now):
    return Subquery(
        PlatformSecret.objects.filter(
            platform=OuterRef("pk"), retired_at__isnull=False, valid_until__gt=now
        )
        .order_by("-valid_until")
        .values("valid_until")[:1]
    )


def _when(value, fmt: str = "DATETIME_FORMAT") -> str:
    return date_format(timezone.localtime(value), fmt) if value else "—"


def _short(value) -> str:
    return _when(value, "SHORT_DATETIME_FORMAT")


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _window_start():
    # The same window as services.figures_for: from the start of the hour, a window ago.
    return services.readiness_since().replace(minute=0, second=0, microsecond=0)


def _admin_url(admin_site, name: str, *args, query: str = "") -> str:
    url = reverse(f"{admin_site.name}:trusted_identity_{name}", args=args)
    return f"{url}?{query}" if query else url


class VisibleSpaceFilter(admin.SimpleListFilter):
    """Filter by space, offering only the spaces the user may see."""

    title = gettext_lazy("space")
    parameter_name = "space"

    def lookups(self, request, model_admin):
        spaces = services.restrict_to_spaces(
            Space.objects.order_by("slug"), request.user, "view", "pk"
        ).values_list("pk", "slug", "name")
        return [
            (str(pk), f"{name} ({slug})" if name and name != slug else slug)
            for pk, slug, name in spaces
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        try:
            space_id = int(value)
        except ValueError:
            return queryset.none()
        if not 0 < space_id < 2**63:  # the database would refuse it
            return queryset.none()
        return queryset.filter(space_id=space_id)


class EnforcementListFilter(admin.SimpleListFilter):
    title = gettext_lazy("enforcement")
    parameter_name = "enforcement"

    def lookups(self, request, model_admin):
        return [
            ("all", gettext_lazy("On for every platform")),
            ("some", gettext_lazy("On for some platforms")),
            ("none", gettext_lazy("Off everywhere")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "all":
            return queryset.filter(
                ti_platform_count__gt=0, ti_enforced_count=F("ti_platform_count")
            )
        if value == "some":
            return queryset.filter(
                ti_enforced_count__gt=0, ti_enforced_count__lt=F("ti_platform_count")
            )
        if value == "none":
            return queryset.filter(ti_enforced_count=0)
        return queryset


class ScopedAdminMixin:
    """Every queryset, choice and autocomplete limited to the user's spaces."""

    #: The lookup from this admin's model to its space.
    space_field = "space"
    #: For each foreign key to Space, the action the user needs in the chosen space.
    space_choice_action = "view"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return services.restrict_to_spaces(queryset, request.user, "view", self.space_field)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Space:
            kwargs["queryset"] = services.restrict_to_spaces(
                Space.objects.order_by("slug"), request.user, self.space_choice_action, "pk"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return permissions(request).staff

    def space_id_of(self, obj) -> int:
        return obj.pk if self.space_field == "pk" else obj.space_id

    def has_view_permission(self, request, obj=None):
        """Any staff user sees the (scoped) lists; an object needs view in its space."""
        perms = permissions(request)
        return perms.staff if obj is None else perms.can("view", self.space_id_of(obj))


# ------------------------------------------------------------------- spaces


@admin.register(Space)
class SpaceAdmin(ScopedAdminMixin, admin.ModelAdmin):
    space_field = "pk"
    list_display = [
        "name",
        "slug",
        "platforms_link",
        "enforcement_summary",
        "last_rotation",
        "members_link",
        "your_role",
        "settings_link",
    ]
    list_display_links = ["name"]
    list_filter = [EnforcementListFilter]
    search_fields = ["slug", "name"]
    ordering = ["slug"]
    change_form_template = "trusted_identity/admin/space_change_form.html"
    settings_template = "trusted_identity/admin/space_settings.html"
    rotate_template = "trusted_identity/admin/rotate_confirm.html"
    enforcement_template = "trusted_identity/admin/enforcement_confirm.html"

    # ---- querysets and permissions

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "autocomplete":
            return queryset  # no columns needed; the search narrows it further
        return queryset.annotate(
            ti_platform_count=_count(Platform.objects.filter(space=OuterRef("pk")), "space"),
            ti_enforced_count=_count(
                Platform.objects.filter(space=OuterRef("pk"), enforced=True), "space"
            ),
            ti_member_count=_count(SpaceMembership.objects.filter(space=OuterRef("pk")), "space"),
            ti_last_rotated_at=Subquery(
                PlatformSecret.objects.filter(
                    platform__space=OuterRef("pk"), retired_at__isnull=True
                )
                .order_by("-created_at")
                .values("created_at")[:1]
            ),
            # list_display callables get no request: the viewer's role rides on the row.
            ti_your_role=Subquery(
                SpaceMembership.objects.filter(
                    space=OuterRef("pk"), user_id=request.user.pk
                ).values("role")[:1]
            ),
            ti_you_are_superuser=Value(permissions(request).superuser, output_field=BooleanField()),
        )

    def get_search_results(self, request, queryset, search_term):
        """Autocomplete of a space field offers only spaces where the form may use it."""
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "autocomplete":
            action = {"platform": "rotate", "spacemembership": "manage_members"}.get(
                request.GET.get("model_name", ""), "view"
            )
            queryset = services.restrict_to_spaces(queryset, request.user, action, "pk")
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request):
        return permissions(request).may_create_spaces

    def has_change_permission(self, request, obj=None):
        perms = permissions(request)
        return perms.can_any("change_space") if obj is None else perms.can("change_space", obj)

    def has_delete_permission(self, request, obj=None):
        return permissions(request).may_create_spaces

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["slug", "name"]
        return ["name", "slug", "created_at", "platform_summary", "settings_link"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = ["created_at", "platform_summary", "settings_link"]
        if not permissions(request).superuser:
            readonly.append("slug")  # the slug is in API calls and the CLI: superusers only
        return readonly

    # ---- list columns

    @admin.display(description=gettext_lazy("platforms"), ordering="ti_platform_count")
    def platforms_link(self, obj):
        url = _admin_url(self.admin_site, "platform_changelist", query=f"space={obj.pk}")
        count = obj.ti_platform_count
        return format_html(
            '<a href="{}">{}</a>',
            url,
            ngettext("%(count)d platform", "%(count)d platforms", count) % {"count": count},
        )

    @admin.display(description=gettext_lazy("enforcement"), ordering="ti_enforced_count")
    def enforcement_summary(self, obj):
        if not obj.ti_platform_count:
            return "—"
        return _("on for %(enforced)d of %(total)d") % {
            "enforced": obj.ti_enforced_count,
            "total": obj.ti_platform_count,
        }

    @admin.display(description=gettext_lazy("last rotation"), ordering="ti_last_rotated_at")
    def last_rotation(self, obj):
        return _short(obj.ti_last_rotated_at)

    @admin.display(description=gettext_lazy("members"), ordering="ti_member_count")
    def members_link(self, obj):
        url = _admin_url(self.admin_site, "spacemembership_changelist", query=f"space={obj.pk}")
        return format_html('<a href="{}">{}</a>', url, obj.ti_member_count)

    @admin.display(description=gettext_lazy("your role"))
    def your_role(self, obj):
        role = getattr(obj, "ti_your_role", None)
        if role:
            return Role(role).label
        return _("superuser") if getattr(obj, "ti_you_are_superuser", False) else "—"

    @admin.display(description=gettext_lazy("Trusted Identity"))
    def settings_link(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        url = _admin_url(self.admin_site, "space_trusted_identity", quote(obj.pk))
        return format_html('<a href="{}" class="ti-settings-link">{}</a>', url, _("Settings"))

    @admin.display(description=gettext_lazy("platforms"))
    def platform_summary(self, obj):
        platforms = sorted(obj.platforms.all(), key=lambda p: KIND_ORDER.get(p.kind, 99))
        if not platforms:
            return "—"
        return format_html(
            "<ul class='ti-plain-list'>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> ({})</li>',
                (
                    (
                        _admin_url(self.admin_site, "platform_change", quote(p.pk)),
                        p.get_kind_display(),
                        _("enforced") if p.enforced else _("not enforced"),
                    )
                    for p in platforms
                ),
            ),
        )

    # ---- the Trusted Identity page of a space

    def get_urls(self):
        def wrap(view):
            def wrapper(*args, **kwargs):
                return self.admin_site.admin_view(view)(*args, **kwargs)

            wrapper.model_admin = self
            return update_wrapper(wrapper, view)

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/trusted-identity/",
                wrap(self.settings_view),
                name=f"{prefix}_trusted_identity",
            ),
            path(
                "<path:object_id>/trusted-identity/<str:kind>/reveal/",
                wrap(self.reveal_view),
                name=f"{prefix}_reveal_secret",
            ),
            path(
                "<path:object_id>/trusted-identity/<str:kind>/rotate/",
                wrap(self.rotate_view),
                name=f"{prefix}_rotate_secret",
            ),
            path(
                "<path:object_id>/trusted-identity/<str:kind>/enforcement/",
                wrap(self.enforcement_view),
                name=f"{prefix}_enforcement",
            ),
            *super().get_urls(),
        ]

    def _space_or_404(self, request, object_id) -> Space:
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
        url = _admin_url(self.admin_site, "space_trusted_identity", quote(space.pk))
        return f"{url}#platform-{platform.kind}" if platform is not None else url

    def _context(self, request, space: Space, **extra) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "space": space,
            "original": space,
            "has_view_permission": True,
            "settings_url": self._settings_url(space),
            "change_url": _admin_url(self.admin_site, "space_change", quote(space.pk)),
            **extra,
        }

    def settings_view(self, request, object_id):
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
        space = self._space_or_404(request, object_id)
        return self._render_settings(request, space)

    @sensitive_variables("revealed", "sections", "context", "response")
    def _render_settings(self, request, space: Space, revealed: dict[int, str] | None = None):
        perms = permissions(request)
        now = timezone.now()
        platforms = sorted(
            Platform.objects.filter(space=space).annotate(
                ti_last_rotated_at=_current_secret_since(),
                ti_previous_valid_until=_previous_valid_until(now),
            ),
            key=lambda p: KIND_ORDER.get(p.kind, 99),
        )
        ids = [p.pk for p in platforms]
        figures = services.figures_for(ids)
        daily = services.daily_figures(ids, days=CHART_DAYS)
        revealed = revealed or {}
        sections = []
        for platform in platforms:
            info = (quote(space.pk), platform.kind)
            sections.append(
                {
                    "platform": platform,
                    "figures": figures[platform.pk],
                    "ready": figures[platform.pk].is_ready(),
                    "share": _percent(figures[platform.pk].valid_share),
                    "chart": _chart(daily[platform.pk]),
                    "secret": revealed.get(platform.pk),
                    "reveal_url": _admin_url(self.admin_site, "space_reveal_secret", *info),
                    "rotate_url": _admin_url(self.admin_site, "space_rotate_secret", *info),
                    "enforcement_url": _admin_url(self.admin_site, "space_enforcement", *info),
                    "change_url": _admin_url(
                        self.admin_site, "platform_change", quote(platform.pk)
                    ),
                    "history_url": _admin_url(
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
            revealed=bool(revealed),
            can_reveal=perms.can("reveal", space),
            can_rotate=perms.can("rotate", space),
            can_enforce=perms.can("enforce", space),
            role_label=Role(role).label if role else (_("superuser") if perms.superuser else ""),
            grace_choices=GRACE_CHOICES,
            default_grace=DEFAULT_GRACE,
            threshold=_percent(app_settings.READINESS_THRESHOLD),
            window_days=app_settings.READINESS_WINDOW.days,
            chart_days=CHART_DAYS,
            add_platform_url=(
                _admin_url(self.admin_site, "platform_add", query=f"space={space.pk}")
                if missing_kinds and perms.can("rotate", space)
                else ""
            ),
            platforms_url=_admin_url(
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
    def reveal_view(self, request, object_id, kind):
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

    def rotate_view(self, request, object_id, kind):
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
                messages.success(request, _rotation_message([platform], grace))
            return HttpResponseRedirect(self._settings_url(space, platform))
        context = self._context(
            request,
            space,
            title=_("Rotate the %(platform)s secret?") % {"platform": platform.get_kind_display()},
            platform=platform,
            form=form,
            previous_valid_until=services.previous_secret_valid_until(platform),
            action_url=_admin_url(
                self.admin_site, "space_rotate_secret", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.rotate_template, context)

    def enforcement_view(self, request, object_id, kind):
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
            share=_percent(figures.valid_share),
            ready=ready,
            needs_override=enabled and not ready,
            threshold=_percent(app_settings.READINESS_THRESHOLD),
            window_days=app_settings.READINESS_WINDOW.days,
            action_url=_admin_url(
                self.admin_site, "space_enforcement", quote(space.pk), platform.kind
            ),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.enforcement_template, context)


def _rotation_message(platforms: list[Platform], grace) -> str:
    names = ", ".join(str(p) for p in platforms)
    if grace.total_seconds() == 0:
        tail = _("The previous secret no longer verifies.")
    else:
        until = _when(timezone.now() + grace)
        tail = _("The previous secret still verifies until %(until)s.") % {"until": until}
    head = ngettext(
        "Rotated the secret of %(names)s.", "Rotated the secrets of %(names)s.", len(platforms)
    ) % {"names": names}
    return f"{head} {tail} " + _("Reveal the new secret on the space's Trusted Identity page.")


def _chart(days) -> dict[str, Any]:
    """Stacked bars (valid, not valid, visitor) for the per-day chart, as SVG geometry."""
    bar_width, pitch, height = 22, 34, 64
    top = max((f.identified + f.visitor for _day, f in days), default=0)
    bars = []
    for index, (day, f) in enumerate(days):
        x = 6 + index * pitch
        y = height
        segments = []
        for css, value in (
            ("ti-bar-valid", f.valid),
            ("ti-bar-bad", f.invalid + f.missing + f.rejected),
            ("ti-bar-visitor", f.visitor),
        ):
            if value and top:
                h = max(1.0, round(value / top * (height - 4), 1))
                y -= h
                segments.append({"css": css, "y": round(y, 1), "height": h})
        bars.append(
            {
                "day": day,
                "figures": f,
                "share": _percent(f.valid_share),
                "bad": f.invalid + f.missing + f.rejected,
                "x": x,
                "label_x": x + bar_width / 2,
                "width": bar_width,
                "segments": segments,
            }
        )
    return {
        "bars": bars,
        "width": 6 + len(days) * pitch,
        "height": height,
        "label_y": height + 13,
        "total_height": height + 18,
        "empty": top == 0,
    }


# ---------------------------------------------------------------- platforms


@admin.register(Platform)
class PlatformAdmin(ScopedAdminMixin, admin.ModelAdmin):
    space_choice_action = "rotate"  # services.add_platform needs "rotate" in the space
    list_display = [
        "kind",
        "space_link",
        "enforced_flag",
        "valid_share",
        "last_rotation",
        "previous_secret_until",
        "settings_link",
    ]
    list_display_links = ["kind"]
    list_filter = [VisibleSpaceFilter, "kind", "enforced"]
    list_select_related = ["space"]
    search_fields = ["space__slug", "space__name", "api_key", "kind"]
    ordering = ["space__slug", "kind"]
    autocomplete_fields = ["space"]
    actions = ["rotate_secrets"]
    change_form_template = "trusted_identity/admin/platform_change_form.html"
    rotate_action_template = "trusted_identity/admin/rotate_action_confirm.html"

    def get_queryset(self, request):
        since = _window_start()
        return (
            super()
            .get_queryset(request)
            .select_related("space")
            .annotate(
                ti_last_rotated_at=_current_secret_since(),
                ti_previous_valid_until=_previous_valid_until(timezone.now()),
                ti_valid=_sum_outcomes([Outcome.VALID], since),
                ti_identified=_sum_outcomes(
                    [Outcome.VALID, Outcome.INVALID, Outcome.MISSING, Outcome.REJECTED], since
                ),
            )
        )

    # ---- permissions: nothing on a platform is edited in a form

    def has_add_permission(self, request):
        return permissions(request).can_any("rotate")

    def has_change_permission(self, request, obj=None):
        # Rotation and enforcement go through the service layer on the space's Trusted
        # Identity page; the kind, space and API key never change.
        return False

    def has_delete_permission(self, request, obj=None):
        perms = permissions(request)
        if obj is None:
            return perms.can_any("delete_platform")
        return perms.can("delete_platform", obj.space_id)

    def has_rotate_permission(self, request, obj=None):
        perms = permissions(request)
        return perms.can_any("rotate") if obj is None else perms.can("rotate", obj.space_id)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["space", "kind"]
        return [
            "space_link",
            "kind",
            "api_key",
            "enforced",
            "enforcement_changed_at",
            "created_at",
            "last_rotation",
            "previous_secret_until",
            "settings_link",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:  # pragma: no cover - has_change_permission is always False
            raise PermissionDenied
        try:
            created = services.add_platform(
                form.cleaned_data["space"], form.cleaned_data["kind"], actor(request)
            )
        except ServicePermissionDenied:
            raise PermissionDenied from None
        obj.pk = created.pk
        obj.api_key = created.api_key
        obj.created_at = created.created_at
        obj._state.adding = False
        obj._state.db = created._state.db
        obj._ti_audited = True

    def log_addition(self, request, obj, message):
        if getattr(obj, "_ti_audited", False):
            return None  # services.add_platform wrote the entry
        return super().log_addition(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        if "_addanother" not in request.POST and "_continue" not in request.POST:
            return HttpResponseRedirect(
                _admin_url(self.admin_site, "space_trusted_identity", quote(obj.space_id))
                + f"#platform-{obj.kind}"
            )
        return response

    # ---- columns

    @admin.display(description=gettext_lazy("space"), ordering="space__slug")
    def space_link(self, obj):
        url = _admin_url(self.admin_site, "space_change", quote(obj.space_id))
        return format_html('<a href="{}">{}</a>', url, obj.space)

    @admin.display(description=gettext_lazy("enforced"), boolean=True, ordering="enforced")
    def enforced_flag(self, obj):
        return obj.enforced

    @admin.display(description=gettext_lazy("valid share"))
    def valid_share(self, obj):
        identified = getattr(obj, "ti_identified", 0)
        if not identified:
            return "—"
        return _percent(obj.ti_valid / identified)

    @admin.display(description=gettext_lazy("last rotation"), ordering="ti_last_rotated_at")
    def last_rotation(self, obj):
        return _short(getattr(obj, "ti_last_rotated_at", None))

    @admin.display(
        description=gettext_lazy("previous secret until"),
        ordering="ti_previous_valid_until",
    )
    def previous_secret_until(self, obj):
        return _short(getattr(obj, "ti_previous_valid_until", None))

    @admin.display(description=gettext_lazy("Trusted Identity"))
    def settings_link(self, obj):
        url = _admin_url(self.admin_site, "space_trusted_identity", quote(obj.space_id))
        return format_html(
            '<a href="{}#platform-{}" class="ti-settings-link">{}</a>',
            url,
            obj.kind,
            _("Settings"),
        )

    # ---- the rotate action

    @admin.action(
        description=gettext_lazy("Rotate Trusted Identity secrets"), permissions=["rotate"]
    )
    def rotate_secrets(self, request, queryset):
        perms = permissions(request)
        selected = list(queryset.select_related("space").order_by("space__slug", "kind"))
        allowed = [p for p in selected if perms.can("rotate", p.space_id)]
        skipped = len(selected) - len(allowed)
        if not allowed:
            self.message_user(
                request,
                _("None of the selected platforms is one you may rotate. Nothing was changed."),
                messages.WARNING,
            )
            return None
        confirmed = request.POST.get("post") == "yes"
        form = RotationForm(request.POST if confirmed else None)
        if confirmed and form.is_valid():
            grace = form.cleaned_data["grace"]
            try:
                services.rotate_secrets(allowed, actor(request), grace)
            except TrustedIdentityError as exc:
                self.message_user(
                    request, _("Nothing was rotated: %s") % exc.message, messages.ERROR
                )
            else:
                self.message_user(request, _rotation_message(allowed, grace), messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rotate Trusted Identity secrets?"),
            "opts": self.opts,
            "platforms": allowed,
            "skipped": skipped,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "rotate_secrets",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.rotate_action_template, context)


# -------------------------------------------------------------- memberships


@admin.register(SpaceMembership)
class SpaceMembershipAdmin(ScopedAdminMixin, admin.ModelAdmin):
    space_choice_action = "manage_members"
    list_display = ["user_name", "space_link", "role", "created_at"]
    list_filter = [VisibleSpaceFilter, "role"]
    list_select_related = ["space", "user"]
    ordering = ["space__slug", "user_id"]
    autocomplete_fields = ["space"]

    def get_search_fields(self, request):
        from django.contrib.auth import get_user_model

        return [f"user__{get_user_model().USERNAME_FIELD}", "space__slug", "space__name"]

    def has_add_permission(self, request):
        return permissions(request).can_any("manage_members")

    def has_change_permission(self, request, obj=None):
        perms = permissions(request)
        if obj is None:
            return perms.can_any("manage_members")
        return perms.can("manage_members", obj.space_id)

    has_delete_permission = has_change_permission

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = MembershipChangeForm if obj is not None else MembershipAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["space", "username", "role"]
        return ["user_name", "space_link", "role", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user_name", "space_link", "created_at"]

    @admin.display(description=gettext_lazy("user"))
    def user_name(self, obj):
        return obj.user.get_username()

    @admin.display(description=gettext_lazy("space"), ordering="space__slug")
    def space_link(self, obj):
        url = _admin_url(self.admin_site, "space_change", quote(obj.space_id))
        return format_html('<a href="{}">{}</a>', url, obj.space)

    # Grants and revocations go through services, which audit them on the space.

    def save_model(self, request, obj, form, change):
        if change:
            space, username = obj.space, obj.user.get_username()
        else:
            space, username = form.cleaned_data["space"], form.cleaned_data["username"]
        try:
            membership = services.grant(space, username, obj.role, actor(request))
        except ServicePermissionDenied:
            raise PermissionDenied from None
        obj.pk = membership.pk
        obj.space = membership.space
        obj.user = membership.user
        obj.created_at = membership.created_at
        obj._state.adding = False
        obj._state.db = membership._state.db

    def delete_model(self, request, obj):
        try:
            services.revoke(obj.space, obj.user.get_username(), actor(request))
        except ServicePermissionDenied:
            raise PermissionDenied from None

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("space", "user"):
            self.delete_model(request, membership)

    def log_addition(self, request, obj, message):
        return None  # services.grant wrote the entry, on the space

    def log_change(self, request, obj, message):
        return None  # services.grant wrote the entry, on the space

    def log_deletions(self, request, queryset):
        return None  # services.revoke writes the entry, on the space
