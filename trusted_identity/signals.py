"""Signals the app sends, and the receivers that keep its caches honest.

Sent after the operation's transaction has committed:

- ``secret_revealed(platform, user)``
- ``secret_rotated(platform, user, grace)``
- ``enforcement_changed(platform, user, enforced, reason)``

None of them carries a secret.
"""

from __future__ import annotations

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import Signal, receiver

secret_revealed = Signal()
secret_rotated = Signal()
enforcement_changed = Signal()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs) -> None:
    if setting in {"TRUSTED_IDENTITY", "SECRET_KEY", "DEBUG"}:
        from .conf import app_settings
        from .keyring import reset_key_ring

        app_settings.reload()
        from .services import clear_plaintext_cache

        reset_key_ring()
        clear_plaintext_cache()
    if setting in {"TRUSTED_IDENTITY", "CACHES"}:
        from .nearcache import near_cache

        near_cache.reset()


def _forget_platform(sender, instance, **kwargs) -> None:
    """A deleted platform (or secret) must stop answering at once, in every process."""
    from .models import Platform
    from .services import invalidate_platform

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


def connect_model_receivers() -> None:
    from .models import Platform, PlatformSecret

    post_delete.connect(_forget_platform, sender=Platform, dispatch_uid="ti_forget_platform")
    post_delete.connect(
        _forget_platform, sender=PlatformSecret, dispatch_uid="ti_forget_platform_secret"
    )
