"""The shape of the app's record lists (the failure log, the audit trail, the policy
history): scoped to the user's spaces, read-only (rows are written by the service layer
and removed by ``prune``), a page of 100 without a full count, moments as the app says
them, and the space filter's autocomplete."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from ..formatting import moment
from .base import ScopedAdminMixin
from .filters import space_filter_media


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
    def when(self, obj: Any) -> str:
        return moment(obj.at)
