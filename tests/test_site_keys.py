"""``TRUSTED_IDENTITY["PRIVATE_KEYS"]``: the setting (a dict, or a JSON object in the
environment), and the system checks that tell an operator, at start, what the site's
keys can't sign (E012, and with ``check --database`` E013, W004, W005), in messages
that name an entry and never show its key."""

from __future__ import annotations

import json

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from trusted_identity.conf import app_settings, invalid_settings
from trusted_identity.publickeys import generate_key_pair
from trusted_identity.services import access, key_sources, public_keys, site_keys

from .docs_snippets import snippet
from .factories import PlatformFactory, SpaceFactory

PAIRS = {alg: generate_key_pair(alg) for alg in ("ES256", "EdDSA")}
ENV = "TRUSTED_IDENTITY_PRIVATE_KEYS"


def keys(settings, **entries):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "PRIVATE_KEYS": entries}


def found(databases=False, prefix="trusted_identity."):
    return [
        message
        for message in run_checks(databases=["default"] if databases else None)
        if (message.id or "").startswith(prefix)
    ]


def assert_no_key_in(messages):
    bodies = ["".join(private.splitlines()[1:-1]) for private, _ in PAIRS.values()]
    for message in messages:
        text = f"{message.msg} {message.hint}"
        assert "\n" not in message.msg
        for body in bodies:
            assert body[:32] not in text and body[-32:] not in text


# ------------------------------------------------------------------ the setting


def test_from_the_environment_a_json_object(settings, monkeypatch, tmp_path):
    settings.TRUSTED_IDENTITY = {
        k: v for k, v in settings.TRUSTED_IDENTITY.items() if k != "PRIVATE_KEYS"
    }
    path = tmp_path / "web.pem"
    path.write_text(PAIRS["ES256"][0])
    monkeypatch.setenv(ENV, json.dumps({"acme/web": str(path), "acme/ios": PAIRS["EdDSA"][0]}))
    app_settings.reload()
    entries = app_settings.PRIVATE_KEYS
    assert entries == {"acme/web": str(path), "acme/ios": PAIRS["EdDSA"][0]}
    assert site_keys.private_key("acme/web").alg == "ES256"
    assert site_keys.private_key("acme/ios").alg == "EdDSA"
    assert site_keys.private_key("acme/android") is None
    assert found() == []


@pytest.mark.parametrize(
    "value", ["{not json", '["acme/web"]', '{"acme/web": ""}', '{"acme/web": 3}', "3"]
)
def test_an_environment_value_that_is_no_mapping_is_e008_without_the_value(
    settings, monkeypatch, value
):
    settings.TRUSTED_IDENTITY = {
        k: v for k, v in settings.TRUSTED_IDENTITY.items() if k != "PRIVATE_KEYS"
    }
    monkeypatch.setenv(ENV, value)
    [problem] = invalid_settings()
    assert "PRIVATE_KEYS" in str(problem) and "JSON object" in str(problem)
    assert value not in str(problem)
    with pytest.raises(ImproperlyConfigured):
        app_settings.PRIVATE_KEYS  # noqa: B018


# -------------------------------------------------------------------- E012


def test_each_entry_that_can_not_sign_is_e012_naming_it(settings, tmp_path):
    keys(
        settings,
        **{
            "acme/web": PAIRS["ES256"][0],  # fine
            "acme/ios": PAIRS["ES256"][1],  # its public half
            "acme/android": str(tmp_path / "missing.pem"),
            "acme/toaster": PAIRS["EdDSA"][0],  # no such kind
            "no slug/web": PAIRS["EdDSA"][0],
            "acme": PAIRS["EdDSA"][0],
        },
    )
    errors = found()
    assert {e.id for e in errors} == {"trusted_identity.E012"}
    assert all(isinstance(e, Error) for e in errors)
    text = "\n".join(e.msg for e in errors)
    assert len(errors) == 5
    assert "['acme/ios']: a public key: PRIVATE_KEYS takes the private half" in text
    assert "missing.pem' can't be read: No such file or directory" in text
    for name in ("acme/toaster", "no slug/web", "acme"):
        assert f"an entry named {name!r}" in text
    assert "generate-key-pair" in errors[0].hint
    assert_no_key_in(errors)
    with pytest.raises(SystemCheckError, match="E012"):
        call_command("check")


# -------------------------------------------------- the database: E013, W004, W005


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


def with_key(platform, source, commit, alg="ES256"):
    cli = access.get_cli_actor()
    with commit(execute=True):
        public_keys.add_public_key(platform, PAIRS[alg][1], cli, kid=f"k-{alg}")
        if source != "secret":
            key_sources.set_key_source(platform, source, cli, force=True, reason="t")
    return platform


def by_id(messages):
    return {m.id: m for m in messages}


def test_the_database_checks_run_only_when_asked(settings, web, django_capture_on_commit_callbacks):
    with_key(web, "public-key", django_capture_on_commit_callbacks)
    assert found() == []
    [warning] = found(databases=True)
    assert warning.id == "trusted_identity.W004" and isinstance(warning, Warning)
    assert "acme/web verifies public keys only" in warning.msg
    assert "has no 'acme/web'" in warning.msg and "409 public_keys_only" in warning.msg
    assert "SILENCED_SYSTEM_CHECKS" in warning.hint


def test_a_both_platform_without_a_key_is_w004_a_secret_one_nothing(
    settings, web, django_capture_on_commit_callbacks
):
    with_key(web, "both", django_capture_on_commit_callbacks)
    ios = with_key(
        PlatformFactory(space=web.space, kind="ios"), "secret", django_capture_on_commit_callbacks
    )
    [warning] = found(databases=True)
    assert "keep signing with its secret" in warning.msg and "acme/web" in warning.msg
    assert ios.key_source == "secret"
    # A space the site does not sign for (not in SIGNING_SPACES) is not its business.
    other = SpaceFactory(slug="elsewhere")
    with_key(
        PlatformFactory(space=other, kind="web"), "public-key", django_capture_on_commit_callbacks
    )
    assert len(found(databases=True)) == 1


def test_a_key_that_is_none_of_the_platforms_is_e013_on_public_key_only(
    settings, web, django_capture_on_commit_callbacks
):
    with_key(web, "public-key", django_capture_on_commit_callbacks)
    keys(settings, **{"acme/web": PAIRS["EdDSA"][0]})
    [error] = found(databases=True)
    assert (error.id, type(error)) == ("trusted_identity.E013", Error)
    assert "is the private half of none of the platform's public keys" in error.msg
    assert "Ed25519, SHA256:" in error.msg  # which key it is, by its public fingerprint
    assert_no_key_in([error])
    keys(settings, **{"acme/web": PAIRS["ES256"][0]})
    assert found(databases=True) == []


def test_on_secret_or_both_it_is_w005_and_so_is_an_entry_for_no_platform(
    settings, web, django_capture_on_commit_callbacks
):
    with_key(web, "both", django_capture_on_commit_callbacks)
    with_key(
        PlatformFactory(space=web.space, kind="ios"), "secret", django_capture_on_commit_callbacks
    )
    keys(
        settings,
        **{
            "acme/web": PAIRS["EdDSA"][0],
            "acme/ios": PAIRS["EdDSA"][0],
            "acme/android": PAIRS["ES256"][0],
            "nowhere/web": PAIRS["ES256"][0],
        },
    )
    messages = found(databases=True)
    assert {m.id for m in messages} == {"trusted_identity.W005"}
    text = "\n".join(sorted(m.msg for m in messages))
    assert "the site signs acme/web's tokens with its secret instead" in text
    assert "once acme/ios takes public keys, the site will go on signing with its secret" in text
    assert "['acme/android'] names no platform" in text
    assert "['nowhere/web'] names no platform" in text
    assert len(messages) == 4
    assert_no_key_in(messages)


def test_an_expired_platform_key_is_said_as_such(settings, web, django_capture_on_commit_callbacks):
    with_key(web, "public-key", django_capture_on_commit_callbacks)
    with_key(web, "secret", django_capture_on_commit_callbacks, alg="EdDSA")
    keys(settings, **{"acme/web": PAIRS["ES256"][0]})
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.expire_public_key(web, "k-ES256", access.get_cli_actor())
    [error] = found(databases=True)
    assert error.id == "trusted_identity.E013" and "'k-ES256', which expired" in error.msg


def test_migrate_is_stopped_by_e013(settings, web, django_capture_on_commit_callbacks):
    """``migrate`` runs the database checks: a deploy whose key can't sign stops there."""
    with_key(web, "public-key", django_capture_on_commit_callbacks)
    keys(settings, **{"acme/web": PAIRS["EdDSA"][0]})
    with pytest.raises(SystemCheckError, match="E013"):
        call_command("check", "--database", "default")


def test_the_documented_setting_is_taken_and_its_missing_file_named(settings):
    """docs/public-keys.md's settings block, as written: the mapping converts, and where
    no such file is (here), E012 names the entry and the path, not a key."""
    namespace: dict = {}
    exec(compile(snippet("private-keys-setting"), "docs/public-keys.md", "exec"), namespace)
    documented = namespace["TRUSTED_IDENTITY"]["PRIVATE_KEYS"]
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "PRIVATE_KEYS": documented}
    entries = app_settings.PRIVATE_KEYS
    assert entries == {"my-space/web": "/run/secrets/trusted-identity-web.pem"}
    [error] = found()
    assert error.id == "trusted_identity.E012"
    assert error.msg == (
        "TRUSTED_IDENTITY['PRIVATE_KEYS']['my-space/web']: the key file "
        "'/run/secrets/trusted-identity-web.pem' can't be read: No such file or directory."
    )
