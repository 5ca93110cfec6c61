"""The list filters of the admin: by space (offering only the spaces the user may see)
and by how far enforcement is on in a space. They live apart because several model
admins use them and because a filter's choices must never name a space the user may
not see: the space filter asks ``services.restrict_to_spaces`` for its choices and
turns away values the database would refuse, and the enforcement filter reads the
counts that ``SpaceAdmin.get_queryset`` annotates.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from .. import services
from ..models import Space


class VisibleSpaceFilter(admin.SimpleListFilter):
    """Filter by space, offering only the spaces the user may see."""

    title = gettext_lazy("space")
    parameter_name = "space"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        spaces = services.restrict_to_spaces(
            Space.objects.order_by("slug"), request.user, "view", "pk"
        ).values_list("pk", "slug", "name")
        return [
            (str(pk), f"{name} ({slug})" if name and name != slug else slug)
            for pk, slug, name in spaces
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
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

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("all", gettext_lazy("On for every platform")),
            ("some", gettext_lazy("On for some platforms")),
            ("none", gettext_lazy("Off everywhere")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
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
