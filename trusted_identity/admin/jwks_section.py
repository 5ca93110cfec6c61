"""What a platform's section of the Trusted Identity page draws of its JWKS URL
(``trusted_identity/admin/_jwks.html``, as ``item.jwks``); the buttons post to
``jwks.JwksView``. Apart from that view so that the page can import it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.utils import quote

from ..models import Platform, Space
from ..services import jwks
from .base import admin_url


def jwks_sections(
    admin_site: AdminSite, space: Space, platforms: Sequence[Platform]
) -> dict[int, dict[str, Any]]:
    """Per platform, ``item.jwks`` of ``_jwks.html``: its ``state`` (``services.jwks
    .JwksState``, None without a URL) and the ``url`` its buttons post to. Two queries
    for the whole page."""
    states = jwks.jwks_states([p.pk for p in platforms])
    return {
        p.pk: {
            "state": states.get(p.pk),
            "url": admin_url(admin_site, "space_jwks", quote(space.pk), p.kind),
        }
        for p in platforms
    }
