"""``{% load trusted_identity_admin %}``: what the app's admin index shows besides its
models: a link to the Trusted Identity page of each space the user may see."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.utils import quote
from django.urls import reverse

from ..models import Space
from ..services import access

register = template.Library()

#: Spaces linked on the app's index; past that, a link to the list of spaces.
SPACES_SHOWN = 20


@register.simple_tag(takes_context=True)
def trusted_identity_space_pages(context: dict[str, Any]) -> dict[str, Any]:
    """``{"spaces": [(space, url)], "more": bool}`` for the user of the request."""
    request = context.get("request")
    if request is None or not getattr(request.user, "is_authenticated", False):
        return {"spaces": [], "more": False}
    visible = access.restrict_to_spaces(Space.objects.order_by("slug"), request.user, "view", "pk")
    spaces = list(visible.only("pk", "slug", "name")[: SPACES_SHOWN + 1])
    site = getattr(request, "current_app", None) or "admin"
    links = [
        (space, reverse(f"{site}:trusted_identity_space_trusted_identity", args=[quote(space.pk)]))
        for space in spaces[:SPACES_SHOWN]
    ]
    return {"spaces": links, "more": len(spaces) > SPACES_SHOWN}
