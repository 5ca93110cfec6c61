"""The memberships' model admin: who has which role in which space, a username typed
rather than picked from the site's users, and only the spaces the user manages offered.
Grants, role changes and revocations go through ``memberships.grant`` and
``memberships.revoke``, which audit them on the space; this module turns the admin's own
log entries off so that nothing is recorded twice, and decides no permission itself.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import TrustedIdentityError
from ..formatting import moment
from ..forms import MembershipAddForm, MembershipChangeForm
from ..models import SpaceMembership
from ..services import memberships
from .base import ScopedAdminMixin, actor, admin_url, permissions
from .filters import VisibleSpaceFilter, space_filter_media


class SpaceMembershipAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Who has which role in which space; grants and revocations go through services."""

    space_choice_action = "manage_members"
    list_display = ["user_name", "space_link", "role", "granted"]
    list_filter = [VisibleSpaceFilter, "role"]
    list_select_related = ["space", "user"]
    ordering = ["space__slug", "user_id"]
    autocomplete_fields = ["space"]
    list_max_show_all = 1000  # "Show all" up to a thousand rows (measured: make bench)

    @property
    def media(self) -> forms.Media:
        return super().media + space_filter_media(self.admin_site)

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        from django.contrib.auth import get_user_model

        return [f"user__{get_user_model().USERNAME_FIELD}", "space__slug", "space__name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions(request).can_any("manage_members")

    def has_change_permission(
        self, request: HttpRequest, obj: SpaceMembership | None = None
    ) -> bool:
        perms = permissions(request)
        if obj is None:
            return perms.can_any("manage_members")
        return perms.can("manage_members", obj.space_id)

    has_delete_permission = has_change_permission

    def get_form(
        self,
        request: HttpRequest,
        obj: SpaceMembership | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[ModelForm]:
        kwargs["form"] = MembershipChangeForm if obj is not None else MembershipAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: SpaceMembership | None = None) -> list[str]:
        if obj is None:
            return ["space", "username", "role"]
        return ["user_name", "space_link", "role", "granted"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: SpaceMembership | None = None
    ) -> list[str]:
        if obj is None:
            return []
        return ["user_name", "space_link", "granted"]

    @admin.display(description=gettext_lazy("created at"), ordering="created_at")
    def granted(self, obj: SpaceMembership) -> str:
        """When the role was granted, as the app writes every moment (``formatting.moment``)."""
        return moment(obj.created_at)

    @admin.display(description=gettext_lazy("user"))
    def user_name(self, obj: SpaceMembership) -> str:
        return obj.user.get_username()

    @admin.display(description=gettext_lazy("space"), ordering="space__slug")
    def space_link(self, obj: SpaceMembership) -> str:
        url = admin_url(self.admin_site, "space_change", quote(obj.space_id))
        return format_html('<a href="{}">{}</a>', url, obj.space)

    # Grants and revocations go through services, which audit them on the space and
    # refuse what the rules forbid (the last owner of a space); the admin words it.

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except TrustedIdentityError as exc:  # refused by the service: nothing was saved
            messages.error(request, exc.message)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except TrustedIdentityError as exc:  # refused by the service: nothing was removed
            messages.error(request, exc.message)
            return HttpResponseRedirect(admin_url(self.admin_site, "spacemembership_changelist"))

    def save_model(
        self, request: HttpRequest, obj: SpaceMembership, form: ModelForm, change: bool
    ) -> None:
        if change:
            space, username = obj.space, obj.user.get_username()
        else:
            space, username = form.cleaned_data["space"], form.cleaned_data["username"]
        membership = memberships.grant(space, username, obj.role, actor(request))
        if getattr(membership, "made_staff", False):
            messages.info(
                request,
                _("%(username)s is now staff, so they can log into the admin.")
                % {"username": username},
            )
        obj.pk = membership.pk
        obj.space = membership.space
        obj.user = membership.user
        obj.created_at = membership.created_at
        obj._state.adding = False
        obj._state.db = membership._state.db

    def delete_model(self, request: HttpRequest, obj: SpaceMembership) -> None:
        memberships.revoke(obj.space, obj.user.get_username(), actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SpaceMembership]) -> None:
        """Each membership on its own: one the rules keep (a last owner) is named, the
        others are removed."""
        for membership in queryset.select_related("space", "user"):
            try:
                self.delete_model(request, membership)
            except PermissionDenied:
                raise  # Django's (the service's is one): a 403
            except TrustedIdentityError as exc:
                messages.error(request, exc.message)

    def log_addition(self, request: HttpRequest, obj: SpaceMembership, message: Any) -> None:
        return None  # memberships.grant wrote the entry, on the space

    def log_change(self, request: HttpRequest, obj: SpaceMembership, message: Any) -> None:
        return None  # memberships.grant wrote the entry, on the space

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[SpaceMembership]) -> None:
        return None  # memberships.revoke writes the entry, on the space
