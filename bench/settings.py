"""Settings of the benchmark deployment: the example project plus two comparison views.

Everything else (database, cache, keys) comes from the environment, as in production.
"""

import os

os.environ.setdefault("DJANGO_READ_DOT_ENV", "0")

from project.settings import *  # noqa: F403
from project.settings import TRUSTED_IDENTITY

ROOT_URLCONF = "bench.urls"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The limit is measured separately: here it would only measure the limiter.
TRUSTED_IDENTITY = {**TRUSTED_IDENTITY, "RATE_LIMIT": os.environ.get("BENCH_RATE_LIMIT", "off")}
# What a user might write by hand instead of the app: one secret in settings.
BENCH_HANDWRITTEN_SECRET = os.environ.get("BENCH_HANDWRITTEN_SECRET", "")
LOGGING = {"version": 1, "disable_existing_loggers": False}
