"""The pieces every admin module shares: the user's permissions, the audit actor, admin
URLs, and the scoping of every queryset, choice and autocomplete to the user's spaces.
It sits at the bottom of the package and imports nothing from it, so that the model
admins and the settings page all ask the service layer the same way
(``permissions(request)`` reads ``services.Permissions`` once per request,
:class:`ScopedAdminMixin` filters with ``services.restrict_to_spaces``); no rule is
decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib.admin import AdminSite
from django.db.models import Field, Model, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse

from .. import services
from ..models import Space


def permissions(request: HttpRequest) -> services.Permissions:
    """The user's permissions, read once per request (one query) however often asked."""
    cached = getattr(request, "_trusted_identity_permissions", None)
    if cached is None or cached[0] != request.user.pk:
        cached = (request.user.pk, services.permissions_for(request.user))
        request._trusted_identity_permissions = cached
    return cached[1]


def actor(request: HttpRequest) -> services.Actor:
    return services.Actor.admin(request.user)


def space_page_url(
    model_admin: Any, route: str, view: Callable[..., HttpResponse], name: str
) -> URLPattern:
    """A page under a space's admin URL (``<id>/trusted-identity/<route>``), wrapped as
    the admin wraps its own views (login, staff, ``never_cache``), named
    ``trusted_identity_space_<name>``."""

    def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
        return model_admin.admin_site.admin_view(view)(*args, **kwargs)

    wrapper.model_admin = model_admin
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"
    return path(
        f"<path:object_id>/trusted-identity/{route}",
        update_wrapper(wrapper, view),
        name=f"{prefix}_{name}",
    )


def admin_url(admin_site: AdminSite, name: str, *args: Any, query: str = "") -> str:
    url = reverse(f"{admin_site.name}:trusted_identity_{name}", args=args)
    return f"{url}?{query}" if query else url


class ScopedAdminMixin:
    """Every queryset, choice and autocomplete limited to the user's spaces."""

    #: The lookup from this admin's model to its space.
    space_field = "space"
    #: For each foreign key to Space, the action the user needs in the chosen space.
    space_choice_action = "view"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        return services.restrict_to_spaces(queryset, request.user, "view", self.space_field)

    def formfield_for_foreignkey(
        self, db_field: Field, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.related_model is Space:
            kwargs["queryset"] = services.restrict_to_spaces(
                Space.objects.order_by("slug"), request.user, self.space_choice_action, "pk"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions(request).staff

    def space_id_of(self, obj: Model) -> int:
        return obj.pk if self.space_field == "pk" else obj.space_id

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """Any staff user sees the (scoped) lists; an object needs view in its space."""
        perms = permissions(request)
        return perms.staff if obj is None else perms.can("view", self.space_id_of(obj))
