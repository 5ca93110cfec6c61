"""Settings of the example site, read from the environment with django-environ.

Every value a deployment changes comes from an environment variable (or a
``.env`` file beside ``manage.py``); the defaults suit local development.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# `make run` writes a .env with generated keys on first use; real environment
# variables win over it, and the test settings switch it off.
if env.bool("DJANGO_READ_DOT_ENV", default=True):
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="django-insecure-development-only-key-change-me-0123456789" if DEBUG else "",
)
ALLOWED_HOSTS = [h.strip() for h in env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env.list("CSRF_TRUSTED_ORIGINS", default=[])]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "trusted_identity",
    # The example site itself, for its demo_setup command (not part of the app's wheel).
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
# Persistent connections: opening one per request costs more than the request itself.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes share the file (runserver and the CLI, gunicorn workers): write
    # transactions take the lock when they begin and wait for it, instead of failing
    # with "database is locked" when a read turns into a write; WAL lets readers on.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://trusted-identity")}
# Django's local-memory cache keeps 300 entries and culls a third when full: room for
# the rate-limit counters of about as many clients. Trusted Identity's counters are one
# per client address (an IPv6 /64) and platform, so a flood from many addresses could
# still cull a real client's; 100,000 entries (a few tens of MB at most) make that
# need as many addresses. Redis (CACHE_URL=redis://...) evicts only under maxmemory.
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache":
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "project.cache.ReusingRedisCache"
    # django-environ spells ?key_prefix=... (and ?timeout=, ?version=) in lower case for
    # Django's Redis backend, which reads them in upper case only: sites (and test runs)
    # sharing one Redis db keep their keys apart by the prefix, so it must take effect.
    for _name in ("key_prefix", "timeout", "version"):
        if _name in CACHES["default"]:
            CACHES["default"][_name.upper()] = CACHES["default"].pop(_name)
# A cache that is down must not hang requests: fail fast, then fall back to the database.
if CACHES["default"]["BACKEND"] == "project.cache.ReusingRedisCache":
    CACHES["default"].setdefault("OPTIONS", {}).update(
        {"socket_connect_timeout": 0.25, "socket_timeout": 0.5}
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Admin login throttling with django-axes: the admin guards the platform secrets. Axes'
# backend comes first and refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
# After this many failed logins for one username from one address, that pair is locked
# out for the cool-off; a right password before then resets the count. Keyed on
# username and address together, so an attacker can't lock a user out from elsewhere.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The client address as the app's rate limits see it (CLIENT_IP_HEADER, PROXY_COUNT).
AXES_CLIENT_IP_CALLABLE = "trusted_identity.ratelimit.client_address"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# E-mail (the app's alerts, Django's error reports) through Django's default SMTP backend
# on localhost. Django 6.1 reads it from MAILERS and warns when that is missing; older
# versions ignore MAILERS and use EMAIL_BACKEND, whose default is the same.
MAILERS = {"default": {}}
LOGIN_URL = "admin:login"

# Production hardening, on unless DEBUG (and each can be overridden).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)

TRUSTED_IDENTITY = {
    # django-environ does not strip list items ("k1, k2"); the app strips them.
    "ENCRYPTION_KEYS": env.str("TRUSTED_IDENTITY_ENCRYPTION_KEYS", default=""),
    "RATE_LIMIT": env.str("TRUSTED_IDENTITY_RATE_LIMIT", default="600/m"),
    "SIGNING_SPACE": env.str("TRUSTED_IDENTITY_SIGNING_SPACE", default="") or None,
    # The only spaces the sign view signs for, comma-separated ("acme,beta"); unset:
    # the SIGNING_SPACE alone.
    "SIGNING_SPACES": env.str("TRUSTED_IDENTITY_SIGNING_SPACES", default="") or None,
    # Behind trusted proxies: the request.META key of the header they append the
    # client's address to (HTTP_X_FORWARDED_FOR), and how many of them append to it.
    "CLIENT_IP_HEADER": env.str("TRUSTED_IDENTITY_CLIENT_IP_HEADER", default="") or None,
    "PROXY_COUNT": env.int("TRUSTED_IDENTITY_PROXY_COUNT", default=1),
}

# The audit trail's durable copy is the AuditEvent table (the admin's "Audit events");
# its log lines (logger "trusted_identity.audit") go to the file AUDIT_LOG names, for a
# log shipper, and nowhere else: not onto the terminal before every CLI answer.
AUDIT_LOG = env.str("AUDIT_LOG", "")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "audit": (
            {
                "class": "logging.handlers.WatchedFileHandler",
                "filename": AUDIT_LOG,
                "formatter": "plain",
            }
            if AUDIT_LOG
            else {"class": "logging.NullHandler"}
        ),
    },
    "loggers": {
        "trusted_identity": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
        "trusted_identity.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
    },
}
