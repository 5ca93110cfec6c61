"""What a platform's section of the Trusted Identity page shows of its keys (CONTRACT
section 10): what it verifies with and who last changed that, its public keys with
their fingerprints and use, and, for a platform that verifies public keys only, when
and by whom its secrets were deleted (read from the audit event, as a fact).

It reads the service layer, a fixed number of queries for all the platforms, and words
nothing that a service decides: the keys' state and "safe to remove" are
``public_keys.KeyInfo``'s, the readiness of public keys only ``key_sources``'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.utils import quote

from ..models import KeySource, Platform, PublicKey, Space
from ..services import key_sources, public_keys
from ..services.figures import Figures
from ..services.verification import PUBLIC_KEY
from .base import admin_url
from .display import percent

#: The key sources, in the order the page offers them.
KEY_SOURCE_CHOICES = KeySource.choices


def key_sections(
    admin_site: AdminSite,
    space: Space,
    platforms: Sequence[Platform],
    figures: dict[int, Figures],
) -> dict[int, dict[str, Any]]:
    """Per platform id, the context of its key source and public keys. Four queries for
    any number of platforms (the keys and their use, the last key-source changes, the
    deletions of secrets)."""
    ids = [p.pk for p in platforms]
    keys = public_keys.key_usage(ids)
    changes = key_sources.last_key_source_changes(ids)
    deletions = key_sources.secrets_deletions(ids)
    result: dict[int, dict[str, Any]] = {}
    for platform in platforms:
        info = (quote(space.pk), platform.kind)
        listed = keys[platform.pk]
        active = sum(1 for key in listed if key.active)
        public_key_only = platform.key_source == KeySource.PUBLIC_KEY
        figs = figures[platform.pk]
        result[platform.pk] = {
            "public_keys": listed,
            "active_keys": active,
            "keys_full": active >= PublicKey.MAX_ACTIVE or len(listed) >= PublicKey.MAX_STORED,
            "max_active_keys": PublicKey.MAX_ACTIVE,
            "max_stored_keys": PublicKey.MAX_STORED,
            "public_key_only": public_key_only,
            "secrets_deleted": deletions.get(platform.pk) if public_key_only else None,
            "key_source_change": changes.get(platform.pk),
            "public_key_users": figs.form_users(PUBLIC_KEY),  # what the rule reads
            "public_key_share": percent(figs.form_share(PUBLIC_KEY)),
            "public_keys_url": admin_url(admin_site, "space_public_keys", *info),
            "key_source_url": admin_url(admin_site, "space_key_source", *info),
        }
    return result
