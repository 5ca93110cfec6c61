"""The admin console: spaces, platforms, memberships, and each space's Trusted Identity page.

It holds no rules of its own. Who may do what comes from ``services``
(:class:`~trusted_identity.services.Permissions`, ``restrict_to_spaces``), and every
reveal, rotation, enforcement, key-source and public-key change goes through the
service layer, which
writes the audit ``LogEntry`` shown in the platform's history.

A staff user sees only the spaces they are a member of, in every list, page,
action, filter and autocomplete; superusers see all. Secrets never appear on a
list or change form: ``PlatformSecret`` is not registered, and the plaintext is
shown only in the response to an explicit, permission-checked Reveal POST.

This module only registers the model admins. The package, lower modules first (a
module imports only from the ones above it in this list):

- ``base``: ``permissions(request)``, ``actor(request)``, ``admin_url`` and
  ``ScopedAdminMixin``, which limits every queryset and choice to the user's spaces.
- ``display``: wording and formatting (dates, shares, the rotation message), the
  per-day chart's geometry, and the subqueries that annotate list rows.
- ``filters``: the list filters by space and by enforcement.
- ``views``: the shapes of the Trusted Identity pages: ``SpaceView``,
  ``PlatformActionView`` and ``GatedChangeView`` (a change the readiness rule gates),
  and the breadcrumbs drawn in Django's block.
- ``key_sections``: what each platform's section shows of its keys.
- ``settings_page`` (the page and Reveal), ``secret_actions`` (Rotate, end the grace),
  ``enforcement``, ``signature_forms``, ``key_sources``, ``origins``, ``public_keys``,
  ``signature_tester``: one view each.
- ``spaces``: ``SpaceAdmin`` (list, forms, space autocomplete; registers those views).
- ``platforms``: ``PlatformAdmin`` and its "Rotate Trusted Identity secrets" action.
- ``memberships``: ``SpaceMembershipAdmin``; grants and revocations through services.
- ``failures``: ``FailureRecordAdmin``, the read-only failure log of the user's spaces.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import FailureRecord, Platform, Space, SpaceMembership
from .failures import FailureRecordAdmin
from .memberships import SpaceMembershipAdmin
from .platforms import PlatformAdmin
from .policy_changes import AuditEventAdmin, PolicyChangeAdmin  # noqa: F401 (registers both)
from .spaces import SpaceAdmin

__all__ = ["FailureRecordAdmin", "PlatformAdmin", "SpaceAdmin", "SpaceMembershipAdmin"]

admin.site.register(Space, SpaceAdmin)
admin.site.register(Platform, PlatformAdmin)
admin.site.register(SpaceMembership, SpaceMembershipAdmin)
admin.site.register(FailureRecord, FailureRecordAdmin)
