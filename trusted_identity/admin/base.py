"""The pieces every admin module shares: the user's permissions, the audit actor, admin
URLs, and the scoping of every queryset, choice and autocomplete to the user's spaces.
It sits at the bottom of the package and imports nothing from it, so that the model
admins and the settings page all ask the service layer the same way
(``permissions(request)`` reads ``access.Permissions`` once per request,
:class:`ScopedAdminMixin` filters with ``access.restrict_to_spaces``); no rule is
decided here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Field, Model, QuerySet
from django.forms import ModelChoiceField, ModelForm
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _

from ..models import Space
from ..services import access


def permissions(request: HttpRequest) -> access.Permissions:
    """The user's permissions, read once per request (one query) however often asked."""
    cached = getattr(request, "_trusted_identity_permissions", None)
    if cached is None or cached[0] != request.user.pk:
        cached = (request.user.pk, access.permissions_for(request.user))
        request._trusted_identity_permissions = cached
    return cached[1]


def actor(request: HttpRequest) -> access.Actor:
    return access.Actor.admin(request.user)


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


def _usable_initial(model: type[Model], name: str, value: Any) -> bool:
    if isinstance(value, str) and "\x00" in value:
        return False
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return True
    target = getattr(field, "target_field", None)
    if target is None or not isinstance(value, str):
        return True
    try:
        target.get_prep_value(target.to_python(value))
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    return True


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
        if getattr(request, "ti_nothing_matches", False):
            return queryset.none()
        return access.restrict_to_spaces(queryset, request.user, "view", self.space_field)

    def formfield_for_foreignkey(
        self, db_field: Field, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.related_model is Space:
            kwargs["queryset"] = access.restrict_to_spaces(
                Space.objects.order_by("slug"), request.user, self.space_choice_action, "pk"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions(request).staff

    # ---- hostile input: answered as nothing found, never a database error

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A filter or search value with a NUL matches no row (PostgreSQL would refuse the
        query): the list is shown empty, without that value, and says why."""
        if any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            clean = QueryDict(mutable=True)
            for key, values in request.GET.lists():
                kept = [value for value in values if "\x00" not in value]
                if "\x00" not in key and kept:
                    clean.setlist(key, kept)
            request.GET = clean
            request.ti_nothing_matches = True
            messages.warning(request, _("No row holds a NUL character: nothing matches."))
        return super().changelist_view(request, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """No row holds a NUL (and PostgreSQL refuses one in a query): nothing matches."""
        if "\x00" in search_term:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm]:
        """The admin's form, whose posted foreign keys that can't be keys (``1e9``, a NUL)
        are dropped before the form sees them: the field then says it needs a choice,
        where Django's autocomplete widget would fail looking the value up."""
        form = super().get_form(request, obj, change, **kwargs)
        model = self.model

        class UsableKeysForm(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **form_kwargs: Any) -> None:
                super().__init__(*args, **form_kwargs)
                if not self.is_bound:
                    return
                data = self.data.copy()
                for name in self.fields:
                    values = data.getlist(name) if hasattr(data, "getlist") else []
                    kept = [value for value in values if _usable_initial(model, name, value)]
                    if kept != values:
                        data.setlist(name, kept)
                self.data = data

        UsableKeysForm.__name__ = form.__name__
        return UsableKeysForm

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """The add form's initial values from the query string (``?space=3``), without
        those no field could hold: a NUL, or a key that is not one (``space=1e9``), which
        would otherwise fail when the form looks the choice up."""
        initial = super().get_changeform_initial_data(request)
        for name, value in list(initial.items()):
            if not _usable_initial(self.model, name, value):
                del initial[name]
        return initial

    def space_id_of(self, obj: Model) -> int:
        return obj.pk if self.space_field == "pk" else obj.space_id

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """Any staff user sees the (scoped) lists; an object needs view in its space."""
        perms = permissions(request)
        return perms.staff if obj is None else perms.can("view", self.space_id_of(obj))
