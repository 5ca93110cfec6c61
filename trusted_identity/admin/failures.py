"""The failure log in the admin: every sampled invalid, missing and rejected start the
user's spaces kept (``FailureRecord``), newest first, filtered by space, platform kind,
outcome (only those logged) and reason, searched by user id, which is shown with its
control and bidirectional characters made visible. Read-only: rows are written by session start
and deleted by ``prune`` and the per-platform cap, never by hand. The settings page
shows each platform's newest and links here for the rest.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import Model
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from ..formatting import NONE, visible
from ..models import FailureRecord
from ..services.counting import NOT_SENT
from .base import admin_url
from .filters import LoggedOutcomeFilter, VisibleSpaceFilter
from .records import ReadOnlyRecordAdmin


class FailureRecordAdmin(ReadOnlyRecordAdmin):
    """The failure log of the user's spaces; members of a space (viewers too) see its
    rows, as they see its figures."""

    space_field = "platform__space"
    list_display = [
        "when",
        "platform_link",
        "outcome",
        "reason",
        "shown_user_id",
        "app",
        "sdk",
    ]
    list_filter = [VisibleSpaceFilter, "platform__kind", LoggedOutcomeFilter, "reason"]
    list_select_related = ["platform__space"]
    search_fields = ["user_id"]
    ordering = ["-at", "-id"]

    def space_id_of(self, obj: Model) -> int:
        return obj.platform.space_id

    @admin.display(description=gettext_lazy("user id"), ordering="user_id")
    def shown_user_id(self, obj: FailureRecord) -> str:
        """The id a client claimed, its control and bidirectional characters spelt out
        (``<U+202E>``), so it can neither reorder the row nor pass for another id."""
        return visible(obj.user_id)

    @admin.display(description=gettext_lazy("app"), ordering="app_version")
    def app(self, obj: FailureRecord) -> str:
        """As the space's page says it: ``—`` for a version not sent."""
        return NONE if obj.app_version in ("", NOT_SENT) else obj.app_version

    @admin.display(description=gettext_lazy("SDK"), ordering="sdk_version")
    def sdk(self, obj: FailureRecord) -> str:
        return NONE if obj.sdk_version in ("", NOT_SENT) else obj.sdk_version

    @admin.display(description=gettext_lazy("platform"), ordering="platform__space__slug")
    def platform_link(self, obj: FailureRecord) -> str:
        url = admin_url(self.admin_site, "space_trusted_identity", quote(obj.platform.space_id))
        return format_html('<a href="{}#platform-{}">{}</a>', url, obj.platform.kind, obj.platform)
