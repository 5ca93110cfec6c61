"""The audit trail and the policy history in the admin, read-only and scoped to the
user's spaces: ``AuditEvent`` (every audited action, the command line's included,
which has no user for the admin's own history) and ``PolicyChange`` (each change of a
platform's gated settings, with the override reason and the rule's figures). Rows are
written by the service layer only, never by hand. Registered here (``admin.register``)
so that the package's ``__init__`` needs one import to show them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from ..formatting import moment
from ..models import AuditEvent, PolicyChange
from .base import ScopedAdminMixin
from .filters import VisibleSpaceFilter, space_filter_media


class ReadOnlyRecordAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """A scoped list of records nobody adds, changes or deletes by hand."""

    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over a long trail on every page
    readonly_fields = ["when"]  # the moment as the app writes it, on the record's page too

    @property
    def media(self) -> forms.Media:
        return super().media + space_filter_media(self.admin_site)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("at"), ordering="at")
    def when(self, obj: AuditEvent | PolicyChange) -> str:
        return moment(obj.at)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyRecordAdmin):
    """Who did what, through which door, in the user's spaces (superusers: everywhere,
    including what belongs to no space)."""

    list_display = ["when", "actor_name", "door", "action", "object_repr", "message"]
    list_filter = [VisibleSpaceFilter, "door", "action"]
    search_fields = ["actor_name", "object_repr", "message"]
    ordering = ["-at", "-id"]
    fields = [
        "when",
        "actor_name",
        "actor",
        "door",
        "detail",
        "action",
        "space",
        "platform",
        "object_label",
        "object_id",
        "object_repr",
        "message",
    ]

    def space_id_of(self, obj: Model) -> int | None:
        return obj.space_id


@admin.register(PolicyChange)
class PolicyChangeAdmin(ReadOnlyRecordAdmin):
    """The history of each platform's enforcement and signature forms."""

    space_field = "platform__space"
    list_display = [
        "when",
        "platform",
        "setting",
        "old_value",
        "new_value",
        "actor_name",
        "door",
        "overridden",
    ]
    list_filter = [VisibleSpaceFilter, "platform__kind", "setting", "door", "overridden"]
    list_select_related = ["platform__space"]
    search_fields = ["actor_name", "override_reason"]
    ordering = ["-at", "-id"]
    fields = [
        "when",
        "platform",
        "setting",
        "old_value",
        "new_value",
        "actor_name",
        "actor",
        "door",
        "detail",
        "overridden",
        "override_reason",
        "readiness",
        "readiness_count",
        "readiness_share",
        "imported_from_log",
    ]

    def space_id_of(self, obj: Model) -> int:
        return obj.platform.space_id
