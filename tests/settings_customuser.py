"""The test settings with a custom user model (``tests/customuser``): e-mail as the
username, no ``is_active`` field. ``tests/test_custom_user.py`` runs the CLI with it."""

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.customuser"]
AUTH_USER_MODEL = "customuser.User"
