"""The app's system checks, through ``manage.py check`` as a site runs them."""

from io import StringIO

import pytest
from django.core.checks import Error, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from trusted_identity.conf import DEFAULTS


def ours(include_deployment_checks=False):
    return {
        message.id: message
        for message in run_checks(include_deployment_checks=include_deployment_checks)
        if (message.id or "").startswith("trusted_identity.")
    }


def messages(id, include_deployment_checks=False):
    return [
        message
        for message in run_checks(include_deployment_checks=include_deployment_checks)
        if message.id == id
    ]


def test_the_suite_settings_pass_every_check():
    assert ours() == {}


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("SIGNING_SAPCE", "SIGNING_SPACE"),
        ("ENCRYPTION_KEY", "ENCRYPTION_KEYS"),
        ("signing_space", "SIGNING_SPACE"),
        ("RATE_LIMITS", "RATE_LIMIT"),
        ("COUNT_FLUSH_INTERVALL", "COUNT_FLUSH_INTERVAL"),
    ],
)
def test_an_unknown_key_is_an_error_naming_the_closest_valid_key(settings, typo, meant):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, typo: "x"}
    [error] = messages("trusted_identity.E006")
    assert isinstance(error, Error)
    assert repr(typo) in error.msg
    assert error.hint == f"Did you mean {meant!r}?"


def test_a_key_like_none_lists_the_valid_keys(settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ZZZ": 1}
    [error] = messages("trusted_identity.E006")
    assert error.hint.startswith("Valid keys: ")
    assert all(key in error.hint for key in DEFAULTS)


def test_every_unknown_key_is_named(settings):
    settings.TRUSTED_IDENTITY = {"SIGNING_SAPCE": "a", "ENCRYPTION_KEY": "b", 3: "c"}
    assert len(messages("trusted_identity.E006")) == 3


def test_trusted_identity_must_be_a_dict(settings):
    settings.TRUSTED_IDENTITY = [("SIGNING_SPACE", "a")]
    [error] = messages("trusted_identity.E006")
    assert "must be a dict" in error.msg


def test_no_trusted_identity_setting_at_all_is_fine(settings, monkeypatch):
    monkeypatch.setenv("TRUSTED_IDENTITY_ENCRYPTION_KEYS", settings.TEST_ENCRYPTION_KEY)
    del settings.TRUSTED_IDENTITY
    assert "trusted_identity.E006" not in ours()


def test_a_cache_alias_missing_from_caches_is_an_error(settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "CACHE_ALIAS": "sessions"}
    [error] = messages("trusted_identity.E007")
    assert "'sessions'" in error.msg and "CACHES" in error.msg
    assert "'default'" in error.hint


def test_manage_py_check_stops_on_a_typo(settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "SIGNING_SAPCE": "my-space"}
    with pytest.raises(SystemCheckError, match="Did you mean 'SIGNING_SPACE'"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_no_hint_names_the_example_projects_environment(settings):
    """Hints name Django settings; CACHE_URL is only read by this repository's project."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": ""}
    settings.DEBUG = False
    found = ours(include_deployment_checks=True)
    assert {"trusted_identity.E001", "trusted_identity.W002"} <= set(found)
    for message in found.values():
        assert "CACHE_URL" not in f"{message.msg} {message.hint}"
    assert "CACHES['default']" in found["trusted_identity.W002"].hint
    assert "TRUSTED_IDENTITY['ENCRYPTION_KEYS']" in found["trusted_identity.E001"].hint


def test_manage_py_check_stops_on_a_bad_duration_naming_it(settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "HOURLY_RETENTION": "14 days"}
    with pytest.raises(
        SystemCheckError, match=r"TRUSTED_IDENTITY\['HOURLY_RETENTION'\] must be a timedelta"
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db  # the database checks run too (the site's keys read platforms)
def test_the_relation_checks_leave_a_bad_value_to_the_settings_check(settings):
    """No check crashes on a value it can't read; the value is reported once."""
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "HOURLY_RETENTION": "14 days",
        "CACHE_ALIAS": 3,
        "ENCRYPTION_KEYS": 3,
        "SIGNING_SPACE": "not a slug",
    }
    found = [
        message.id
        for message in run_checks(include_deployment_checks=True, databases=["default"])
        if (message.id or "").startswith("trusted_identity.")
    ]
    assert found == ["trusted_identity.E008"] * 4
