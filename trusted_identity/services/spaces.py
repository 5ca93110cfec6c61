"""Spaces and their platforms: find them by slug and kind, create them.

A new platform gets its public API key and its first secret in one transaction.
"""

from __future__ import annotations

import secrets
import unicodedata

from django.contrib.admin.models import ADDITION
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..conf import app_settings
from ..exceptions import AlreadyExists, InvalidRequest, PlatformNotFound, SpaceNotFound
from ..models import Platform, PlatformKind, Space
from .access import Actor, authorize, authorize_superuser
from .audit import audit
from .lookup import verification_changed
from .platform_secrets import create_secrets


def get_space(slug: str) -> Space:
    if "\x00" in slug:  # no slug has one, and PostgreSQL refuses it in a query
        raise SpaceNotFound(f"no space with slug {slug!r}")
    try:
        return Space.objects.get(slug=slug)
    except Space.DoesNotExist:
        raise SpaceNotFound(f"no space with slug {slug!r}") from None


def validate_kind(kind: str) -> str:
    if kind not in PlatformKind.values:
        raise PlatformNotFound(
            f"unknown platform kind {kind!r}; expected one of {', '.join(PlatformKind.values)}"
        )
    return kind


def get_platform(space_slug: str, kind: str) -> Platform:
    validate_kind(kind)
    if "\x00" in space_slug:  # PostgreSQL refuses NUL in a query: no such space
        get_space(space_slug)
    try:
        return Platform.objects.select_related("space").get(space__slug=space_slug, kind=kind)
    except Platform.DoesNotExist:
        get_space(space_slug)  # a missing space is named as such
        raise PlatformNotFound(f"space {space_slug!r} has no {kind} platform") from None


def get_signing_platform(space_slug: str, kind: str) -> Platform:
    """The platform the sign view may sign for: only in the spaces this site serves.

    A space outside ``SIGNING_SPACES`` is answered exactly as an unknown one (same
    error, same message, no query), so the sign view can't tell which other spaces
    exist, nor which platforms they have: a user of this site must not get a
    signature that another space's apps accept.
    """
    validate_kind(kind)
    if space_slug not in app_settings.SIGNING_SPACES:
        raise SpaceNotFound(f"no space with slug {space_slug!r}")
    return get_platform(space_slug, kind)


def clean_space_name(name: str) -> str:
    """A space's display name as stored, or InvalidRequest saying what is wrong.

    Names are shown in the admin, the CLI's tables and e-mails: no control, format
    (bidirectional overrides, zero-width) or line-separator characters, which would
    forge or hide text there; at most the column's length, said as a message rather
    than left to the database to refuse.
    """
    name = (name or "").strip()
    limit = Space._meta.get_field("name").max_length
    if len(name) > limit:
        raise InvalidRequest(f"the name is longer than {limit} characters ({len(name):,})")
    hidden = sorted({ch for ch in name if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")})
    if hidden:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in hidden[:5])
        raise InvalidRequest(
            f"the name holds control or invisible formatting characters ({shown}): "
            "use printable text on one line"
        )
    return name


def create_space(slug: str, name: str = "", actor: Actor | None = None) -> Space:
    """A new space; only superusers (and the CLI's own account) create them: a space is a
    tenant."""
    if actor is not None:
        authorize_superuser(actor, "create spaces")
    try:
        validate_slug(slug)
    except ValidationError:
        raise InvalidRequest(
            f"invalid slug {slug!r}: use letters, numbers, underscores or hyphens"
        ) from None
    if len(slug) > Space._meta.get_field("slug").max_length:
        raise InvalidRequest("the slug is longer than 64 characters")
    name = clean_space_name(name)
    try:
        with transaction.atomic():
            space = Space.objects.create(slug=slug, name=name or slug)
    except IntegrityError:
        raise AlreadyExists(f"a space with slug {slug!r} already exists") from None
    audit(actor, space, "Created the space.", ADDITION, action="create_space")
    return space


def new_api_key() -> str:
    return app_settings.API_KEY_PREFIX + secrets.token_urlsafe(24)


def add_platform(space: Space, kind: str, actor: Actor | None = None) -> Platform:
    """A new platform with its API key and its first secret."""
    validate_kind(kind)
    if actor is not None:
        authorize(actor, "rotate", space.pk)
    try:
        with transaction.atomic():
            platform = Platform.objects.create(space=space, kind=kind, api_key=new_api_key())
            create_secrets([platform], timezone.now())
            # Its secret is another platform's to its space's platforms (other_platform).
            verification_changed()
    except IntegrityError:
        raise AlreadyExists(f"space {space.slug!r} already has a {kind} platform") from None
    audit(actor, platform, "Added the platform with a new secret.", ADDITION, action="add_platform")
    return platform
