"""The example project's settings (``project/settings.py``): what it reads from the
environment, evaluated afresh with the variables a deployment sets."""

import runpy
from pathlib import Path

import pytest

SETTINGS_FILE = Path(__file__).resolve().parent.parent / "project" / "settings.py"


@pytest.fixture
def project_settings(monkeypatch):
    """``project/settings.py`` evaluated with the given environment; its globals."""

    def load(**environ):
        for name in (
            "TRUSTED_IDENTITY_SIGNING_SPACE",
            "TRUSTED_IDENTITY_SIGNING_SPACES",
            "TRUSTED_IDENTITY_CLIENT_IP_HEADER",
            "TRUSTED_IDENTITY_PROXY_COUNT",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DJANGO_READ_DOT_ENV", "0")
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(str(SETTINGS_FILE))

    return load


def test_signing_spaces_from_the_environment(project_settings):
    config = project_settings(
        TRUSTED_IDENTITY_SIGNING_SPACE="acme", TRUSTED_IDENTITY_SIGNING_SPACES="acme,beta"
    )["TRUSTED_IDENTITY"]
    assert config["SIGNING_SPACE"] == "acme"
    assert config["SIGNING_SPACES"] == "acme,beta"


def test_signing_spaces_unset_means_the_signing_space_alone(project_settings, settings):
    config = project_settings(TRUSTED_IDENTITY_SIGNING_SPACE="acme")["TRUSTED_IDENTITY"]
    assert config["SIGNING_SPACES"] is None
    # ... which the app reads as the SIGNING_SPACE alone.
    from trusted_identity.conf import app_settings

    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, **config}
    assert set(app_settings.SIGNING_SPACES) == {"acme"}


def test_proxy_settings_from_the_environment(project_settings):
    config = project_settings()["TRUSTED_IDENTITY"]
    assert (config["CLIENT_IP_HEADER"], config["PROXY_COUNT"]) == (None, 1)
    config = project_settings(
        TRUSTED_IDENTITY_CLIENT_IP_HEADER="HTTP_X_FORWARDED_FOR", TRUSTED_IDENTITY_PROXY_COUNT="2"
    )["TRUSTED_IDENTITY"]
    assert (config["CLIENT_IP_HEADER"], config["PROXY_COUNT"]) == ("HTTP_X_FORWARDED_FOR", 2)


def test_admin_login_throttling_with_django_axes(project_settings):
    config = project_settings()
    assert "axes" in config["INSTALLED_APPS"]
    assert config["AUTHENTICATION_BACKENDS"][0] == "axes.backends.AxesStandaloneBackend"
    assert config["MIDDLEWARE"][-1] == "axes.middleware.AxesMiddleware"
    assert config["AXES_ENABLED"] is True
    assert 3 <= config["AXES_FAILURE_LIMIT"] <= 20
    assert config["AXES_COOLOFF_TIME"].total_seconds() >= 60
    assert config["AXES_LOCKOUT_PARAMETERS"] == [["username", "ip_address"]]
    assert config["AXES_CLIENT_IP_CALLABLE"] == "trusted_identity.ratelimit.client_address"


def test_the_default_local_memory_cache_has_room_for_many_clients(project_settings, monkeypatch):
    """Django's 300 entries would let a flood from a few hundred addresses cull a real
    client's rate-limit counter (SECURITY.md); Redis is left as configured."""
    monkeypatch.delenv("CACHE_URL", raising=False)
    cache = project_settings()["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert cache["OPTIONS"]["MAX_ENTRIES"] == 100_000
    redis = project_settings(CACHE_URL="redis://127.0.0.1:6379/7")["CACHES"]["default"]
    assert "MAX_ENTRIES" not in redis.get("OPTIONS", {})


def test_a_redis_cache_url_keeps_its_key_prefix(project_settings):
    """Sites (and test runs) sharing one Redis db keep apart by the URL's key_prefix,
    which django-environ hands Django's Redis backend in lower case, where it is unread."""
    cache = project_settings(CACHE_URL="redis://127.0.0.1:6379/7?key_prefix=site-one&timeout=60")[
        "CACHES"
    ]["default"]
    assert cache["BACKEND"] == "project.cache.ReusingRedisCache"
    assert (cache["KEY_PREFIX"], cache["TIMEOUT"]) == ("site-one", 60)
    assert "key_prefix" not in cache and "timeout" not in cache
