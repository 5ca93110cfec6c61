"""The app's own signal receivers: caches that follow settings and deleted rows.

Connected by ``TrustedIdentityConfig.ready()``. They sit above the service layer
(they call into it), which is why they are not in ``signals.py``.
"""

from __future__ import annotations

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete

from .conf import app_settings
from .keyring import reset_key_ring
from .models import Platform, PlatformSecret
from .nearcache import near_cache
from .services import clear_plaintext_cache, invalidate_platform


def reset_on_setting_change(*, setting: str, **kwargs) -> None:
    """Settings read once and remembered are read again (``override_settings``, tests)."""
    if setting in {"TRUSTED_IDENTITY", "SECRET_KEY", "DEBUG"}:
        app_settings.reload()
        reset_key_ring()
        clear_plaintext_cache()
    if setting in {"TRUSTED_IDENTITY", "CACHES"}:
        near_cache.reset()


def forget_platform(sender, instance, **kwargs) -> None:
    """A deleted platform (or secret) must stop answering at once, in every process."""
    if isinstance(instance, Platform):
        api_key = instance.api_key
    else:
        api_key = (
            Platform.objects.filter(pk=instance.platform_id)
            .values_list("api_key", flat=True)
            .first()
        )
    if api_key:
        transaction.on_commit(lambda: invalidate_platform(api_key))


def connect() -> None:
    setting_changed.connect(reset_on_setting_change, dispatch_uid="ti_reset_on_setting_change")
    post_delete.connect(forget_platform, sender=Platform, dispatch_uid="ti_forget_platform")
    post_delete.connect(
        forget_platform, sender=PlatformSecret, dispatch_uid="ti_forget_platform_secret"
    )
