"""The process's encryption key ring, built from settings and kept by the runtime.

The development fallback (a key derived from SECRET_KEY) exists only with DEBUG
on; it warns loudly, and the system check ``trusted_identity.E001`` refuses to let
a DEBUG-off deployment start without real keys.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import runtime
from .conf import app_settings
from .crypto import KeyRing, KeyRingError, derive_key

logger = logging.getLogger("trusted_identity")


def build_key_ring() -> KeyRing:
    """A fresh ring from the current settings; ImproperlyConfigured if there is none."""
    keys = app_settings.encryption_keys()
    if not keys:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "TRUSTED_IDENTITY_ENCRYPTION_KEYS is not set; with DEBUG off secrets can't be "
                "encrypted. Make a key with `manage.py trusted_identity generate-key`."
            )
        logger.warning(
            "TRUSTED_IDENTITY_ENCRYPTION_KEYS is not set: using a development key derived from "
            "SECRET_KEY. Never run like this in production."
        )
        keys = [derive_key(settings.SECRET_KEY)]
    try:
        return KeyRing(keys)
    except KeyRingError as exc:
        raise ImproperlyConfigured(f"TRUSTED_IDENTITY_ENCRYPTION_KEYS: {exc}") from None


def get_key_ring(current: runtime.Runtime | None = None) -> KeyRing:
    """The ring, built once per process (and again after ``runtime.reset()``); ``current``
    the process's runtime, when the caller has read it already."""
    if current is None:
        current = runtime.current()
    return current.key_ring.get(build_key_ring)
