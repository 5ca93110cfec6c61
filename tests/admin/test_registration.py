"""What the admin package registers (``trusted_identity.admin``): the system checks pass
on the model admins, and ``PlatformSecret`` has none.
"""

from django.contrib import admin
from django.core.management import call_command

from trusted_identity.models import PlatformSecret


def test_admin_system_checks_pass():
    call_command("check", "--fail-level", "WARNING")


def test_platform_secret_is_not_registered():
    assert not admin.site.is_registered(PlatformSecret)
