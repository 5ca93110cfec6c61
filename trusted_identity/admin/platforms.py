"""The platforms' model admin: the scoped list (enforcement, valid share, the share
signed with a token and with a public key, last rotation, the previous secret's grace;
filtered by key source too), the read-only platform page, the add form, and the
"Rotate Trusted Identity secrets" action with its confirmation page. Nothing on a
platform is edited in a form: adding goes through ``spaces.add_platform`` and
rotation through ``platform_secrets.rotate_secrets``, which write the audit entries; this
module only words the outcome and leaves out the platforms the user may not rotate.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import TrustedIdentityError
from ..formatting import form_shares, number
from ..forms import RotationForm
from ..models import KeySource, Platform
from ..services import platform_secrets, spaces
from ..services.figures import figures_for
from .base import ScopedAdminMixin, actor, admin_url, permissions
from .display import (
    current_secret_since,
    percent,
    previous_valid_until,
    rotation_message,
    short,
)
from .filters import VisibleSpaceFilter, space_filter_media
from .views import Crumb, admin_form, model_breadcrumbs


class PlatformAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """The platforms: read-only pages, added and rotated through the service layer."""

    space_choice_action = "rotate"  # spaces.add_platform needs "rotate" in the space
    list_display = [
        "kind",
        "space_link",
        "enforced_flag",
        "valid_share",
        "form_shares",
        "last_rotation",
        "previous_secret_until",
        "settings_link",
    ]
    list_display_links = ["kind"]
    list_filter = [VisibleSpaceFilter, "kind", "enforced", "key_source"]
    list_select_related = ["space"]
    search_fields = ["space__slug", "space__name", "api_key", "kind"]
    ordering = ["space__slug", "kind"]
    autocomplete_fields = ["space"]
    actions = ["rotate_secrets"]
    change_form_template = "trusted_identity/admin/platform_change_form.html"
    rotate_action_template = "trusted_identity/admin/rotate_action_confirm.html"
    list_max_show_all = 1000  # "Show all" up to a thousand rows (measured: make bench)

    @property
    def media(self) -> forms.Media:
        return super().media + space_filter_media(self.admin_site)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Platform]:
        return (
            super()
            .get_queryset(request)
            .select_related("space")
            .annotate(
                ti_last_rotated_at=current_secret_since(),
                ti_previous_valid_until=previous_valid_until(timezone.now()),
            )
        )

    def get_changelist_instance(self, request: HttpRequest):
        """The page's platforms with their distinct users (one read of the sketches for
        the page, not one per row): the valid share column judges by users, as the
        settings page and readiness do."""
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        if rows:
            figures = figures_for([row.pk for row in rows])
            for row in rows:
                row.ti_figures = figures[row.pk]
        return changelist

    # ---- permissions: nothing on a platform is edited in a form

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions(request).can_any("rotate")

    def has_change_permission(self, request: HttpRequest, obj: Platform | None = None) -> bool:
        # Rotation and enforcement go through the service layer on the space's Trusted
        # Identity page; the kind, space and API key never change.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Platform | None = None) -> bool:
        perms = permissions(request)
        if obj is None:
            return perms.can_any("delete_platform")
        return perms.can("delete_platform", obj.space_id)

    def has_rotate_permission(self, request: HttpRequest, obj: Platform | None = None) -> bool:
        perms = permissions(request)
        return perms.can_any("rotate") if obj is None else perms.can("rotate", obj.space_id)

    def get_fields(self, request: HttpRequest, obj: Platform | None = None) -> list[str]:
        if obj is None:
            return ["space", "kind"]
        return [
            "space_link",
            "kind",
            "api_key",
            "enforced",
            "enforcement_changed_at",
            "key_source",
            "created_at",
            "last_rotation",
            "previous_secret_until",
            "settings_link",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Platform | None = None) -> list[str]:
        return [] if obj is None else self.get_fields(request, obj)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        space = initial.get("space")
        if space is not None and not (
            isinstance(space, str) and space.isdigit() and len(space) <= 18
        ):
            initial.pop("space")  # odd input: no initial space rather than a server error
        return initial

    def formfield_for_choice_field(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.TypedChoiceField:
        """Adding for a given space (``?space=<id>``, as its Trusted Identity page links):
        only the kinds that space lacks are offered."""
        field = super().formfield_for_choice_field(db_field, request, **kwargs)
        space_id = request.GET.get("space", "")
        if db_field.name == "kind" and space_id.isdigit() and len(space_id) <= 18:
            taken = set(
                Platform.objects.filter(space_id=int(space_id)).values_list("kind", flat=True)
            )
            field.choices = [(value, label) for value, label in field.choices if value not in taken]
        return field

    def save_model(
        self, request: HttpRequest, obj: Platform, form: ModelForm, change: bool
    ) -> None:
        if change:  # pragma: no cover - has_change_permission is always False
            raise PermissionDenied
        created = spaces.add_platform(
            form.cleaned_data["space"], form.cleaned_data["kind"], actor(request)
        )
        obj.pk = created.pk
        obj.api_key = created.api_key
        obj.created_at = created.created_at
        obj._state.adding = False
        obj._state.db = created._state.db
        obj._ti_audited = True

    def log_addition(self, request: HttpRequest, obj: Platform, message: Any) -> LogEntry | None:
        if getattr(obj, "_ti_audited", False):
            return None  # spaces.add_platform wrote the entry
        return super().log_addition(request, obj, message)

    def response_add(
        self, request: HttpRequest, obj: Platform, post_url_continue: str | None = None
    ) -> HttpResponse:
        response = super().response_add(request, obj, post_url_continue)
        if "_addanother" not in request.POST and "_continue" not in request.POST:
            return HttpResponseRedirect(
                admin_url(self.admin_site, "space_trusted_identity", quote(obj.space_id))
                + f"#platform-{obj.kind}"
            )
        return response

    # ---- columns

    @admin.display(description=gettext_lazy("space"), ordering="space__slug")
    def space_link(self, obj: Platform) -> str:
        url = admin_url(self.admin_site, "space_change", quote(obj.space_id))
        return format_html('<a href="{}">{}</a>', url, obj.space)

    @admin.display(description=gettext_lazy("enforced"), boolean=True, ordering="enforced")
    def enforced_flag(self, obj: Platform) -> bool:
        return obj.enforced

    @admin.display(description=gettext_lazy("valid share (users)"))
    def valid_share(self, obj: Platform) -> str:
        figures = getattr(obj, "ti_figures", None)
        if figures is None or figures.valid_share is None:
            return "—"
        return f"{percent(figures.valid_share)} of {number(figures.distinct_identified)}"

    @admin.display(description=gettext_lazy("signed with"))
    def form_shares(self, obj: Platform) -> str:
        """The share of the valid users who signed with a token and with a public key, as
        the Trusted Identity page's summary and ``status`` say it, one form a line (the
        column stays narrow)."""
        figures = getattr(obj, "ti_figures", None)
        if figures is None:
            return "—"
        shares = form_shares(figures.distinct_valid, figures.users_by_form).split(" · ")
        return format_html(
            '<span title="{}">{}</span>',
            _("The share of the distinct valid users of the readiness window"),
            format_html_join(mark_safe(" ·<br>"), "{}", ((share,) for share in shares)),
        )

    @admin.display(description=gettext_lazy("key source"), ordering="key_source")
    def key_source(self, obj: Platform) -> str:
        return obj.get_key_source_display()

    @admin.display(description=gettext_lazy("last rotation"), ordering="ti_last_rotated_at")
    def last_rotation(self, obj: Platform) -> str:
        return short(getattr(obj, "ti_last_rotated_at", None))

    @admin.display(
        description=gettext_lazy("previous secret until"),
        ordering="ti_previous_valid_until",
    )
    def previous_secret_until(self, obj: Platform) -> str:
        return short(getattr(obj, "ti_previous_valid_until", None))

    @admin.display(description=gettext_lazy("Trusted Identity"))
    def settings_link(self, obj: Platform) -> str:
        url = admin_url(self.admin_site, "space_trusted_identity", quote(obj.space_id))
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
    def rotate_secrets(
        self, request: HttpRequest, queryset: QuerySet[Platform]
    ) -> TemplateResponse | None:
        perms = permissions(request)
        selected = list(queryset.select_related("space").order_by("space__slug", "kind"))
        permitted = [p for p in selected if perms.can("rotate", p.space_id)]
        skipped = len(selected) - len(permitted)
        # A platform that verifies public keys only holds no secret to rotate.
        allowed = [p for p in permitted if p.key_source != KeySource.PUBLIC_KEY]
        keys_only = len(permitted) - len(allowed)
        if not allowed:
            self.message_user(
                request,
                _(
                    "None of the selected platforms is one you may rotate (or it verifies "
                    "public keys only: it holds no secret). Nothing was changed."
                ),
                messages.WARNING,
            )
            return None
        confirmed = request.POST.get("post") == "yes"
        form = RotationForm(request.POST if confirmed else None)
        if confirmed and form.is_valid():
            grace = form.cleaned_data["grace"]
            try:
                platform_secrets.rotate_secrets(allowed, actor(request), grace)
            except TrustedIdentityError as exc:
                self.message_user(
                    request, _("Nothing was rotated: %s") % exc.message, messages.ERROR
                )
            else:
                self.message_user(request, rotation_message(allowed, grace), messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Rotate Trusted Identity secrets?"),
            "opts": self.opts,
            "platforms": allowed,
            "skipped": skipped,
            "keys_only": keys_only,
            **admin_form(form, [(None, {"fields": ["grace"]})], self),
            "breadcrumbs": model_breadcrumbs(
                self.admin_site, self.opts, Crumb(_("Rotate Trusted Identity secrets"))
            ),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "rotate_secrets",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.rotate_action_template, context)
