"""The settings table: each setting converted once, the same way when read and checked."""

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from trusted_identity.conf import DURATION, SETTINGS, app_settings, invalid_settings

DURATIONS = [name for name, s in SETTINGS.items() if s.kind.must_be.startswith(DURATION.must_be)]
#: A value each setting can't take.
BAD = {
    **dict.fromkeys(DURATIONS, "24h"),
    "ENCRYPTION_KEYS": 12345,
    "SIGNING_SPACE": "my space",
    "SIGNING_SPACES": ["acme", "no/slug"],
    "USER_ID_ATTRIBUTE": "",
    "READINESS_THRESHOLD": 1.5,
    "READINESS_MIN_STARTS": -1,
    "SECRET_PREFIX": 7,
    "API_KEY_PREFIX": None,
    "MAX_BODY_BYTES": 0,
    "MAX_USER_ID_LENGTH": "1024",
    "RATE_LIMIT": "600 per minute",
    "SIGN_RATE_LIMIT": "10/d",
    "UNKNOWN_KEY_RATE_LIMIT": "60 a minute",
    "IPV6_RATE_LIMIT_PREFIX": 129,
    "CLIENT_IP_HEADER": 1,
    "PROXY_COUNT": True,
    "CACHE_ALIAS": "",
    "LOOKUP_CACHE_TIMEOUT": 0.5,
    "LOOKUP_CHECK_INTERVAL": -1,
    "TOKEN_LEEWAY": "24h",
    "LOCAL_LOOKUP_CACHE": "yes",
    "COUNT_FLUSH_INTERVAL": "0",
    "VERSIONS_PER_DAY": 2.5,
    "FAILURE_LOG_PER_SECOND": None,
    "FAILURE_LOG_MAX_ROWS": -3,
    "ALERT_REJECTIONS_PER_HOUR": 0,
    "MAX_TOKEN_LENGTH": None,
    "TESTER_RATE_LIMIT": 30,
    "CLI_ACTOR_USERNAME": None,
    "SIGN_AUTHENTICATION": "no_such_module.Authentication",
    "CORS_MAX_AGE": "3600",
    "LEAN_PATH_SKIPS_MIDDLEWARE": ["not a path"],
    "JWKS_TIMEOUT": 0,
    "JWKS_MAX_BYTES": 100,
    "JWKS_CA_BUNDLE": "/no/such/ca-bundle.pem",
    "JWKS_ALLOW_HTTP_LOOPBACK": "yes",
    "PRIVATE_KEYS": ["acme/web"],
}


def configure(settings, **values):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, **values}


def test_every_setting_has_a_bad_value_here():
    assert set(BAD) == set(SETTINGS)


def test_the_defaults_all_convert(settings, monkeypatch):
    monkeypatch.delenv("TRUSTED_IDENTITY_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("TRUSTED_IDENTITY_RATE_LIMIT", raising=False)
    settings.TRUSTED_IDENTITY = {}
    assert invalid_settings() == []
    assert app_settings.RATE_LIMIT == "600/m"
    assert not app_settings.SIGNING_SPACES
    assert app_settings.encryption_keys() == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_fails_the_check_and_the_read_with_one_message(settings, name):
    configure(settings, **{name: BAD[name]})
    [error] = [m for m in run_checks() if m.level >= 40]  # errors only
    assert error.msg.startswith(f"TRUSTED_IDENTITY[{name!r}] must be ")
    assert error.id == SETTINGS[name].check_id
    with pytest.raises(ImproperlyConfigured) as raised:
        getattr(app_settings, name)
    assert str(raised.value) == error.msg
    assert name not in vars(app_settings)  # nothing half-converted remembered
    with pytest.raises(ImproperlyConfigured):
        getattr(app_settings, name)


@pytest.mark.parametrize("name", DURATIONS)
def test_every_duration_takes_a_timedelta_or_seconds(settings, name):
    configure(settings, **{name: 90})
    assert getattr(app_settings, name) == timedelta(seconds=90)
    configure(settings, **{name: timedelta(days=400)})
    assert getattr(app_settings, name) == timedelta(days=400)


def test_the_duration_messages_say_what_the_value_must_be(settings):
    configure(settings, DEFAULT_GRACE="24h")
    [error] = invalid_settings()
    assert str(error) == (
        "TRUSTED_IDENTITY['DEFAULT_GRACE'] must be a timedelta (or seconds), at least 0 "
        "(got '24h')."
    )


def test_seconds_settings_take_a_timedelta_too(settings):
    configure(
        settings,
        LOOKUP_CACHE_TIMEOUT=timedelta(minutes=5),
        CORS_MAX_AGE=60,
        LOOKUP_CHECK_INTERVAL=timedelta(milliseconds=250),
    )
    assert (app_settings.LOOKUP_CACHE_TIMEOUT, app_settings.CORS_MAX_AGE) == (300, 60)
    assert app_settings.LOOKUP_CHECK_INTERVAL == 0.25


def test_slugs_and_paths_are_normalised(settings):
    configure(
        settings,
        SIGNING_SPACE="",
        SIGNING_SPACES=" acme, globex ,",
        LEAN_PATH_SKIPS_MIDDLEWARE=["a.b.Middleware"],
        CLIENT_IP_HEADER="",
    )
    assert app_settings.SIGNING_SPACE is None
    assert set(app_settings.SIGNING_SPACES) == {"acme", "globex"}
    assert app_settings.LEAN_PATH_SKIPS_MIDDLEWARE == ("a.b.Middleware",)
    assert app_settings.CLIENT_IP_HEADER is None


def test_signing_spaces_defaults_to_signing_space_alone(settings):
    configure(settings, SIGNING_SPACE="acme", SIGNING_SPACES=None)
    assert set(app_settings.SIGNING_SPACES) == {"acme"}


def test_unset_or_none_reads_the_environment(settings, monkeypatch):
    monkeypatch.setenv("TRUSTED_IDENTITY_RATE_LIMIT", "5/s")
    monkeypatch.setenv("TRUSTED_IDENTITY_ENCRYPTION_KEYS", " k1 , k2 ")
    configure(settings, RATE_LIMIT=None, ENCRYPTION_KEYS=None)
    assert app_settings.RATE_LIMIT == "5/s"
    assert app_settings.encryption_keys() == ["k1", "k2"]
    configure(settings, RATE_LIMIT="off")
    assert app_settings.RATE_LIMIT == "off"


def test_an_encryption_key_is_never_echoed(settings):
    configure(settings, ENCRYPTION_KEYS=["a-real-key", 7])
    [error] = invalid_settings()
    assert "a-real-key" not in str(error) and "got a value of type list" in str(error)


def test_a_read_is_an_attribute_until_reload(settings):
    configure(settings, MAX_BODY_BYTES=1000)
    assert app_settings.MAX_BODY_BYTES == 1000
    assert vars(app_settings)["MAX_BODY_BYTES"] == 1000  # no __getattr__ on the next read
    app_settings.reload()
    assert "MAX_BODY_BYTES" not in vars(app_settings)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NO_SUCH"):
        app_settings.NO_SUCH  # noqa: B018
