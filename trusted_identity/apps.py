from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrustedIdentityConfig(AppConfig):
    name = "trusted_identity"
    verbose_name = _("Trusted Identity")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers  # noqa: F401 - checks register on import

        receivers.connect()
