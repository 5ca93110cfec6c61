from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrustedIdentityConfig(AppConfig):
    name = "trusted_identity"
    verbose_name = _("Trusted Identity")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers, runtime  # noqa: F401 - checks register on import
        from .countwrites import CountBatch
        from .outcomes import write_batch

        # Every piece of per-process state (caches, memos, the count buffer and its
        # thread, the alerts' outbox), with one reset().
        runtime.install(runtime.Runtime(write_counts=write_batch, new_batch=CountBatch))
        receivers.connect()
