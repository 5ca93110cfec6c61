"""The app's own signal receivers: caches that follow settings and deleted rows.

Connected by ``TrustedIdentityConfig.ready()``. They sit above the service layer
(they call into it), which is why they are not in ``signals.py``.
"""

from __future__ import annotations

from django.core.signals import setting_changed
from django.db.models.signals import post_delete

from . import outcomes, runtime
from .models import Platform, PlatformSecret
from .services.alerts import check_written_counts
from .services.lookup import verification_changed

#: The settings that what the runtime remembers depends on.
RUNTIME_SETTINGS = frozenset({"TRUSTED_IDENTITY", "SECRET_KEY", "DEBUG", "CACHES"})


def reset_on_setting_change(*, setting: str, **kwargs) -> None:
    """Settings read once and remembered are read again (``override_settings``, tests)."""
    if setting in RUNTIME_SETTINGS:
        runtime.current().reset()


def forget_platform(sender, instance, **kwargs) -> None:
    """A deleted platform (or secret) must stop answering in every process.

    Runs inside the deletion's transaction, so the generation goes up with it.
    """
    verification_changed()


def connect() -> None:
    setting_changed.connect(reset_on_setting_change, dispatch_uid="ti_reset_on_setting_change")
    post_delete.connect(forget_platform, sender=Platform, dispatch_uid="ti_forget_platform")
    post_delete.connect(
        forget_platform, sender=PlatformSecret, dispatch_uid="ti_forget_platform_secret"
    )
    outcomes.counts_written.connect(check_written_counts, dispatch_uid="ti_alerts")
