"""The spaces' model admin: the list (platforms, enforcement, last rotation, members,
the viewer's role, a link to each space's Trusted Identity page), the add and change
forms, and the space autocomplete that the platform and membership forms use. It owns
only how spaces are listed and edited; who may add, change or delete a space comes
from ``permissions(request)``. The Trusted Identity page and its per-platform views
(``SPACE_PAGES``) are class-based views of their own (``views``), registered under the
space's admin URL.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import BooleanField, OuterRef, QuerySet, Subquery, Value
from django.http import HttpRequest
from django.urls import URLPattern, URLResolver
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..forms import SpaceForm
from ..models import Platform, PlatformSecret, Role, Space, SpaceMembership
from ..services import access
from .base import ScopedAdminMixin, admin_url, permissions, space_page_url
from .display import KIND_ORDER, count_subquery, short
from .enforcement import EnforcementView
from .filters import FILTER_PURPOSE, EnforcementListFilter
from .jwks import JwksView
from .key_sources import KeySourceView
from .origins import OriginsView
from .public_keys import PublicKeysView
from .secret_actions import RevokePreviousView, RotateSecretView
from .settings_page import RevealSecretView, SpaceSettingsView
from .signature_forms import SignatureFormView
from .signature_tester import SignatureTesterView

#: The Trusted Identity page and its per-platform views: (route, view, URL name).
SPACE_PAGES = [
    ("", SpaceSettingsView, "trusted_identity"),
    ("<str:kind>/reveal/", RevealSecretView, "reveal_secret"),
    ("<str:kind>/rotate/", RotateSecretView, "rotate_secret"),
    ("<str:kind>/revoke-previous/", RevokePreviousView, "revoke_previous"),
    ("<str:kind>/enforcement/", EnforcementView, "enforcement"),
    ("<str:kind>/signature-form/", SignatureFormView, "signature_form"),
    ("<str:kind>/origins/", OriginsView, "origins"),
    ("<str:kind>/test-signature/", SignatureTesterView, "test_signature"),
    ("<str:kind>/key-source/", KeySourceView, "key_source"),
    ("<str:kind>/public-keys/", PublicKeysView, "public_keys"),
    ("<str:kind>/jwks/", JwksView, "jwks"),
]


class SpaceAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """The spaces: a scoped list with enforcement, rotation and members at a glance."""

    space_field = "pk"
    # The Trusted Identity page right after the name: visible without scrolling sideways.
    list_display = [
        "name",
        "settings_link",
        "slug",
        "platforms_link",
        "enforcement_summary",
        "last_rotation",
        "members_link",
        "your_role",
    ]
    list_display_links = ["name"]
    list_filter = [EnforcementListFilter]
    list_max_show_all = 1000  # "Show all" up to a thousand spaces (measured: make bench)
    search_fields = ["slug", "name"]
    ordering = ["slug"]
    change_form_template = "trusted_identity/admin/space_change_form.html"
    form = SpaceForm

    def get_urls(self) -> list[URLPattern | URLResolver]:
        pages = [
            space_page_url(self, route, view.as_view(model_admin=self), name)
            for route, view, name in SPACE_PAGES
        ]
        return [*pages, *super().get_urls()]

    # ---- querysets and permissions

    def get_queryset(self, request: HttpRequest) -> QuerySet[Space]:
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        changelist = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        if match is not None and match.url_name != changelist:
            # The columns and the enforcement filter are the list's alone: a space's own
            # pages (its form, its Trusted Identity page, the autocomplete) read the row
            # without five subqueries built and run for nothing.
            return queryset
        return queryset.annotate(
            ti_platform_count=count_subquery(
                Platform.objects.filter(space=OuterRef("pk")), "space"
            ),
            ti_enforced_count=count_subquery(
                Platform.objects.filter(space=OuterRef("pk"), enforced=True), "space"
            ),
            ti_member_count=count_subquery(
                SpaceMembership.objects.filter(space=OuterRef("pk")), "space"
            ),
            ti_last_rotated_at=Subquery(
                PlatformSecret.objects.filter(platform__space=OuterRef("pk"))
                .current()
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

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Space], search_term: str
    ) -> tuple[QuerySet[Space], bool]:
        """Autocomplete of a space field offers only spaces where the form may use it; the
        space filter of a list, every space the user may see."""
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "autocomplete":
            action = {"platform": "rotate", "spacemembership": "manage_members"}.get(
                request.GET.get("model_name", ""), "view"
            )
            if request.GET.get("purpose") == FILTER_PURPOSE:
                action = "view"  # a list filter: any space the user may see
            queryset = access.restrict_to_spaces(queryset, request.user, action, "pk")
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions(request).may_create_spaces

    def has_change_permission(self, request: HttpRequest, obj: Space | None = None) -> bool:
        perms = permissions(request)
        return perms.can_any("change_space") if obj is None else perms.can("change_space", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Space | None = None) -> bool:
        return permissions(request).may_create_spaces

    def get_fields(self, request: HttpRequest, obj: Space | None = None) -> list[str]:
        if obj is None:
            return ["slug", "name"]
        return ["name", "slug", "created_at", "platform_summary", "settings_link"]

    def get_readonly_fields(self, request: HttpRequest, obj: Space | None = None) -> list[str]:
        if obj is None:
            return []
        readonly = ["created_at", "platform_summary", "settings_link"]
        if not permissions(request).superuser:
            readonly.append("slug")  # the slug is in API calls and the CLI: superusers only
        return readonly

    # ---- list columns

    @admin.display(description=gettext_lazy("platforms"), ordering="ti_platform_count")
    def platforms_link(self, obj: Space) -> str:
        url = admin_url(self.admin_site, "platform_changelist", query=f"space={obj.pk}")
        count = obj.ti_platform_count
        return format_html(
            '<a href="{}">{}</a>',
            url,
            ngettext("%(count)d platform", "%(count)d platforms", count) % {"count": count},
        )

    @admin.display(description=gettext_lazy("enforcement"), ordering="ti_enforced_count")
    def enforcement_summary(self, obj: Space) -> str:
        if not obj.ti_platform_count:
            return "—"
        return _("on for %(enforced)d of %(total)d") % {
            "enforced": obj.ti_enforced_count,
            "total": obj.ti_platform_count,
        }

    @admin.display(description=gettext_lazy("last rotation"), ordering="ti_last_rotated_at")
    def last_rotation(self, obj: Space) -> str:
        return short(obj.ti_last_rotated_at)

    @admin.display(description=gettext_lazy("members"), ordering="ti_member_count")
    def members_link(self, obj: Space) -> str:
        url = admin_url(self.admin_site, "spacemembership_changelist", query=f"space={obj.pk}")
        return format_html('<a href="{}">{}</a>', url, obj.ti_member_count)

    @admin.display(description=gettext_lazy("your role"))
    def your_role(self, obj: Space) -> str:
        role = getattr(obj, "ti_your_role", None)
        if role:
            return Role(role).label
        return _("superuser") if getattr(obj, "ti_you_are_superuser", False) else "—"

    @admin.display(description=gettext_lazy("Trusted Identity"))
    def settings_link(self, obj: Space | None) -> str:
        if obj is None or obj.pk is None:
            return "—"
        url = admin_url(self.admin_site, "space_trusted_identity", quote(obj.pk))
        return format_html('<a href="{}" class="ti-settings-link">{}</a>', url, _("Settings"))

    @admin.display(description=gettext_lazy("platforms"))
    def platform_summary(self, obj: Space) -> str:
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
                        admin_url(self.admin_site, "platform_change", quote(p.pk)),
                        p.get_kind_display(),
                        _("enforced") if p.enforced else _("not enforced"),
                    )
                    for p in platforms
                ),
            ),
        )
