"""Test settings: the example project's, with fixed keys and fast hashing.

DATABASE_URL and CACHE_URL still come from the environment, so the same suite
runs on SQLite (default) and PostgreSQL (``DATABASE_URL=postgres://...``).
"""

import importlib.util
import os
import uuid

os.environ["DJANGO_READ_DOT_ENV"] = "0"  # a developer's .env must not change the tests
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

from project.settings import *  # noqa: F403
from project.settings import CACHES, INSTALLED_APPS, TRUSTED_IDENTITY

# Two fixed test keys would be fine too; one is enough as the default ring.
TEST_ENCRYPTION_KEY = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
TRUSTED_IDENTITY = {
    **TRUSTED_IDENTITY,
    "ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    "RATE_LIMIT": "off",
    "SIGN_RATE_LIMIT": "off",
    "UNKNOWN_KEY_RATE_LIMIT": "off",
    "SIGNING_SPACE": None,
    # The spaces the tests' sign-view requests name; any other answers 404.
    "SIGNING_SPACES": ["acme", "other", "globex"],
    # Each start is written at once, so tests read figures straight after requests;
    # tests/test_outcomes.py covers the buffered mode.
    "COUNT_FLUSH_INTERVAL": 0,
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
ALLOWED_HOSTS = ["*"]
# Django's test Client.login() authenticates without a request, which django-axes
# refuses; tests/test_login_throttling.py turns Axes on around real admin logins.
AXES_ENABLED = False

# Django REST framework (the dev extra) for the sign view's pluggable authentication
# (tests/test_sign_authentication.py); the app itself does not need it.
if importlib.util.find_spec("rest_framework") is not None:
    INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework", "rest_framework.authtoken"]

# On a shared PostgreSQL server, TEST_DATABASE_NAME names the throw-away test database
# (Django's default is "test_" + the name in DATABASE_URL).
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}  # noqa: F405

# With CACHE_URL=redis://..., each test process keys its entries under a prefix of its
# own, and the tests empty that prefix alone (tests/isolation.py): the workers of a run,
# and two runs at once, share the Redis db but never a key.
if CACHES["default"]["BACKEND"] == "project.cache.ReusingRedisCache":
    CACHES["default"]["KEY_PREFIX"] = "-".join(
        filter(None, [str(CACHES["default"].get("KEY_PREFIX", "")), "ti-test", uuid.uuid4().hex])
    )
