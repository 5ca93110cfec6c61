"""The list filters of the admin: by space (offering only the spaces the user may see)
and by how far enforcement is on in a space. They live apart because several model
admins use them and because a filter's choices must never name a space the user may
not see: the space filter asks ``access.restrict_to_spaces`` for its choices and
turns away values the database would refuse, and the enforcement filter reads the
counts that ``SpaceAdmin.get_queryset`` annotates.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy

from ..models import Outcome, Platform, Space
from ..services import access
from ..services.diagnostics import LOGGED_OUTCOMES


def space_filter_media(admin_site: admin.AdminSite) -> forms.Media:
    """What the space filter's search box needs on a list page: the admin's autocomplete
    (select2) and the script that applies the chosen space."""
    field = Platform._meta.get_field("space")
    return AutocompleteSelect(field, admin_site).media + forms.Media(
        js=["trusted_identity/space_filter.js"],
        css={"all": ["trusted_identity/space_filter.css"]},
    )


#: The autocomplete request of the space filter (not of a form's space field): it may
#: offer every space the user can see, not only those the form's action allows.
FILTER_PURPOSE = "filter"


class VisibleSpaceFilter(admin.SimpleListFilter):
    """Filter by space, found by typing (the admin's autocomplete), among the spaces the
    user may see.

    The sidebar never lists every space, which at a thousand spaces would make every
    list page as heavy as the space list: it shows "All", the space selected, and a
    search box served by the admin's autocomplete view (scoped by
    ``SpaceAdmin.get_search_results``).
    """

    title = gettext_lazy("space")
    parameter_name = "space"
    template = "trusted_identity/admin/space_filter.html"

    def __init__(self, request, params, model, model_admin) -> None:
        super().__init__(request, params, model, model_admin)
        self.model_name = model._meta.model_name
        # The lookup from the listed model to its space (``space``, ``platform__space``).
        self.space_lookup = f"{getattr(model_admin, 'space_field', 'space')}_id"
        self.autocomplete_url = (
            reverse(f"{model_admin.admin_site.name}:autocomplete") + f"?purpose={FILTER_PURPOSE}"
        )
        self.other_params: list[tuple[str, str]] = []

    def _space_id(self) -> int | None:
        try:
            space_id = int(self.value())
        except (TypeError, ValueError):
            return None
        return space_id if 0 < space_id < 2**63 else None  # the database would refuse more

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        space_id = self._space_id()
        if space_id is None:
            return []
        spaces = access.restrict_to_spaces(
            Space.objects.filter(pk=space_id), request.user, "view", "pk"
        ).values_list("pk", "slug", "name")
        return [
            (str(pk), f"{name} ({slug})" if name and name != slug else slug)
            for pk, slug, name in spaces
        ]

    def has_output(self) -> bool:
        return True  # the search box, even with no space selected

    def choices(self, changelist):
        # The other filters, the search and the ordering survive a new choice of space.
        self.other_params = [
            (name, value)
            for name, value in changelist.params.items()
            if name not in (self.parameter_name, "p", "e")
        ]
        return super().choices(changelist)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is None:
            return queryset
        space_id = self._space_id()
        if space_id is None:
            return queryset.none()
        return queryset.filter(**{self.space_lookup: space_id})


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


class LoggedOutcomeFilter(admin.SimpleListFilter):
    """Filter the failure log by outcome, offering only the outcomes it logs (invalid,
    missing, rejected): a valid start or a visitor is never logged, so offering them
    would only lead to an empty list."""

    title = gettext_lazy("outcome")
    parameter_name = "outcome"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(outcome), Outcome(outcome).label) for outcome in LOGGED_OUTCOMES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        if value not in LOGGED_OUTCOMES:
            return queryset.none()
        return queryset.filter(outcome=value)
