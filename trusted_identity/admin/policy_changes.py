"""The audit trail and the policy history in the admin, read-only and scoped to the
user's spaces: ``AuditEvent`` (every audited action, the command line's included,
which has no user for the admin's own history) and ``PolicyChange`` (each change of a
platform's gated settings, with the override reason and the rule's figures). Rows are
written by the service layer only, never by hand. Registered here (``admin.register``)
so that the package's ``__init__`` needs one import to show them.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model

from ..models import AuditEvent, PolicyChange
from .filters import VisibleSpaceFilter
from .records import ReadOnlyRecordAdmin


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
    """The history of each platform's enforcement, signature forms and key source."""

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
