"""The shapes of the pages under a space's Trusted Identity page, declared once.

- :class:`SpaceView`: a page of one space (the Trusted Identity page itself). It finds
  the space through the model admin's scoped ``get_object`` (another space is a 404),
  checks ``permission`` in it (403), and builds the admin's context: ``each_context``,
  the title and the breadcrumbs.
- :class:`PlatformActionView`: a page or button of one platform of the space (reveal,
  rotate, end the grace, origins, public keys, the signature tester, the gated changes); ``back()``
  returns to the platform's section of the Trusted Identity page.
- :class:`GatedChangeView`: "confirm a change the readiness rule gates, with an
  override": a subclass declares the form, the service call, the readiness evidence
  and the wording (enforcement, signature forms and key sources today).

Every view is registered by ``SpaceAdmin.get_urls`` through ``space_page_url``, so
``admin_site.admin_view`` wraps it (login, staff, CSRF on POST, never cached). The
service's ``PermissionDenied`` is Django's, so a refusal the service decides is a 403
with nothing to translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import django
from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite, ModelAdmin, helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.text import Truncator
from django.utils.translation import gettext as _
from django.views.generic.base import ContextMixin, TemplateResponseMixin, View

from ..exceptions import InvalidRequest, MissingOverrideReason, TrustedIdentityError
from ..models import Platform, PlatformKind, Space
from .base import actor, admin_url, permissions

#: Django draws its admin breadcrumbs as an ordered list from 6.1 (ticket #34041), as a
#: ``<div>`` of links joined by ``&rsaquo;`` before: the app's pages draw them as the running
#: Django does, so that Django's stylesheet applies.
BREADCRUMBS_AS_LIST = django.VERSION >= (6, 1)


@dataclass(frozen=True)
class Crumb:
    label: str
    url: str = ""


@dataclass(frozen=True)
class Breadcrumbs:
    """The trail ``includes/breadcrumbs.html`` draws in Django's ``breadcrumbs`` block."""

    crumbs: tuple[Crumb, ...]
    as_list: bool = BREADCRUMBS_AS_LIST


def model_breadcrumbs(admin_site: AdminSite, opts: Any, *tail: Crumb) -> Breadcrumbs:
    """Home, the app, the model's list, then ``tail``: the trail of Django's own pages."""
    site = admin_site.name
    return Breadcrumbs(
        (
            Crumb(_("Home"), reverse(f"{site}:index")),
            Crumb(
                str(opts.app_config.verbose_name),
                reverse(f"{site}:app_list", kwargs={"app_label": opts.app_label}),
            ),
            Crumb(
                str(opts.verbose_name_plural).capitalize(),
                reverse(f"{site}:{opts.app_label}_{opts.model_name}_changelist"),
            ),
            *tail,
        )
    )


class SpaceView(ContextMixin, TemplateResponseMixin, View):
    """A page of one space, for a user with ``permission`` in it."""

    #: The ``SpaceAdmin`` serving the view (given by ``as_view(model_admin=...)``).
    model_admin: ModelAdmin | None = None
    #: The action the user needs in the space (``services.Permissions.can``).
    permission: ClassVar[str] = "view"
    #: The last breadcrumb, after the Trusted Identity page; empty on the page itself.
    crumb: ClassVar[str] = ""

    space: Space

    @property
    def admin_site(self) -> AdminSite:
        return self.model_admin.admin_site

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.find_objects(**kwargs)
        if not permissions(request).can(self.permission, self.space):
            raise PermissionDenied
        request.current_app = self.admin_site.name
        return super().dispatch(request, *args, **kwargs)

    def find_objects(self, object_id: str, **kwargs: Any) -> None:
        space = self.model_admin.get_object(self.request, unquote(object_id))
        if space is None:  # not there, or not one of the user's spaces: the same answer
            raise Http404(_("No such space."))
        self.space = space

    def actor(self) -> Any:
        return actor(self.request)

    def settings_url(self) -> str:
        return admin_url(self.admin_site, "space_trusted_identity", quote(self.space.pk))

    def get_title(self) -> str:
        return _("Trusted Identity: %(space)s") % {"space": self.space}

    def get_breadcrumbs(self) -> Breadcrumbs:
        space = Crumb(
            Truncator(str(self.space)).words(18),
            admin_url(self.admin_site, "space_change", quote(self.space.pk)),
        )
        if not self.crumb:
            return model_breadcrumbs(
                self.admin_site, self.model_admin.opts, space, Crumb(_("Trusted Identity"))
            )
        return model_breadcrumbs(
            self.admin_site,
            self.model_admin.opts,
            space,
            Crumb(_("Trusted Identity"), self.settings_url()),
            Crumb(self.crumb),
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = {
            **self.admin_site.each_context(self.request),
            "opts": self.model_admin.opts,
            "space": self.space,
            "original": self.space,
            "has_view_permission": True,
            "title": self.get_title(),
            "breadcrumbs": self.get_breadcrumbs(),
            "settings_url": self.settings_url(),
            "change_url": admin_url(self.admin_site, "space_change", quote(self.space.pk)),
        }
        return super().get_context_data(**context, **kwargs)


def platform_message_tag(kind: str) -> str:
    """The ``extra_tags`` of a message about one platform: the Trusted Identity page
    draws it in that platform's section instead of at the top of the page."""
    return f"ti-platform-{kind}"


class PlatformActionView(SpaceView):
    """A page or button of one platform (``<space>/trusted-identity/<kind>/...``)."""

    platform: Platform

    def find_objects(self, object_id: str, kind: str, **kwargs: Any) -> None:
        super().find_objects(object_id)
        if kind not in PlatformKind.values:  # also keeps odd input (NUL) out of the query
            raise Http404(_("This space has no such platform."))
        platform = (
            Platform.objects.select_related("space").filter(space=self.space, kind=kind).first()
        )
        if platform is None:
            raise Http404(_("This space has no such platform."))
        self.platform = platform

    def back_url(self) -> str:
        return f"{self.settings_url()}#platform-{self.platform.kind}"

    def back(self) -> HttpResponseRedirect:
        """Back to the platform's section of the Trusted Identity page, where the
        messages given with :meth:`notify` are drawn, under the section's title."""
        return HttpResponseRedirect(self.back_url())

    def notify(self, level: int, message: str) -> None:
        """A message for the platform's section (``platform_message_tag``): the
        redirect lands on the section, so the message is where the eye is."""
        messages.add_message(
            self.request, level, message, extra_tags=platform_message_tag(self.platform.kind)
        )

    @property
    def platform_label(self) -> str:
        return self.platform.get_kind_display()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            platform=self.platform, back_url=self.back_url(), action_url=self.request.path, **kwargs
        )


def admin_form(
    form: forms.Form, fieldsets: list[tuple[str | None, dict[str, Any]]], model_admin: ModelAdmin
) -> dict[str, Any]:
    """What Django's change form gives its template for a form: the ``adminform`` drawn
    by ``admin/includes/fieldset.html`` and its ``errors``."""
    return {
        "form": form,
        "adminform": helpers.AdminForm(form, fieldsets, {}, model_admin=model_admin),
        "errors": helpers.AdminErrorList(form, []),
    }


class GatedChangeView(PlatformActionView):
    """Confirm a change the readiness rule gates: GET (or a POST without ``post=yes``)
    shows what changes and the evidence; a confirmed POST calls the service, whose
    refusal below the rule shows the evidence it decided on and offers the override,
    which needs a reason. The rule, the override and the audit entry are the service's.

    A subclass declares the form, the service call (:meth:`apply`), the evidence
    (:meth:`get_evidence`) and the wording.
    """

    permission = "enforce"
    #: Validates the change, with the ``override`` box and its ``reason``.
    form_class: ClassVar[type[forms.Form]]
    #: The field that names the change; without it there is nothing to confirm.
    choice_field: ClassVar[str]
    #: The service's refusals under the readiness rule.
    refusals: ClassVar[tuple[type[TrustedIdentityError], ...]]
    #: The fields shown above the override (besides the hidden ones).
    fields: ClassVar[list[str]] = []

    # ---- declared by a subclass

    def choice_error(self) -> str:
        raise NotImplementedError

    def refusal_error(self, evidence: dict[str, Any]) -> str:
        """The override box's error when the service refused, worded by its verdict
        (not rolled out, or too little data to tell)."""
        raise NotImplementedError

    def unchanged_message(self, form: forms.Form) -> str:
        """Why there is nothing to do (the platform already is so), or ``""``."""
        raise NotImplementedError

    def get_evidence(self, form: forms.Form) -> dict[str, Any]:
        """The readiness figures the page shows (and ``needs_override``)."""
        raise NotImplementedError

    def evidence_of_refusal(self, refusal: TrustedIdentityError) -> dict[str, Any]:
        """The evidence the service decided on when it refused (it may have changed)."""
        raise NotImplementedError

    def apply(self, form: forms.Form, force: bool, reason: str) -> None:
        raise NotImplementedError

    def success_message(self, form: forms.Form) -> str:
        raise NotImplementedError

    # ---- the shared flow

    def get_form(self) -> forms.Form:
        data = self.request.POST if self.request.method == "POST" else self.request.GET
        return self.form_class(data)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.confirm(confirmed=False)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.confirm(confirmed=request.POST.get("post") == "yes")

    def confirm(self, confirmed: bool) -> HttpResponse:
        form = self.get_form()
        if not form.is_valid() and form.has_error(self.choice_field):
            self.notify(messages.ERROR, self.choice_error())
            return self.back()
        unchanged = self.unchanged_message(form)
        if unchanged:
            self.notify(messages.INFO, unchanged)
            return self.back()
        evidence = self.get_evidence(form)
        if confirmed and form.is_valid():
            try:
                self.apply(form, form.cleaned_data["override"], form.cleaned_data["reason"])
            except PermissionDenied:
                raise  # Django's (the service's is one): a 403
            except self.refusals as refusal:
                evidence = self.evidence_of_refusal(refusal)
                form.add_error("override", self.refusal_error(evidence))
            except MissingOverrideReason:
                form.add_error("reason", _("Give the reason for the override."))
            except InvalidRequest as exc:  # any other bad input, worded as the service says
                form.add_error(None, exc.message)
            except TrustedIdentityError as exc:
                self.notify(messages.ERROR, exc.message)
                return self.back()
            else:
                self.notify(messages.SUCCESS, self.success_message(form))
                return self.back()
        return self.render_to_response(
            self.get_context_data(
                **evidence, **admin_form(form, self.get_fieldsets(evidence), self.model_admin)
            )
        )

    def get_fieldsets(self, evidence: dict[str, Any]) -> list[tuple[str | None, dict[str, Any]]]:
        fieldsets: list[tuple[str | None, dict[str, Any]]] = []
        if self.fields:
            fieldsets.append((None, {"fields": self.fields}))
        if evidence["needs_override"]:
            fieldsets.append(
                (
                    _("Override the readiness rule"),
                    {"fields": ["override", "reason"], "classes": ["ti-override"]},
                )
            )
        return fieldsets
