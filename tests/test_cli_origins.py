"""``allow-origin`` and ``deny-origin``: a web platform's CORS allow-list from the command line."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError

from trusted_identity.models import Role, SpaceMembership
from trusted_identity.services import lookup, origins

from .factories import PlatformFactory
from .test_cli import audit_events_for, cli_env, fails, manage, run  # noqa: F401  (cli_env: a fixture)


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


def test_allow_origin_normalises_audits_and_applies_at_once(web):
    out, err = run("allow-origin", "acme", "web", "HTTPS://App.Example.com:443/")
    assert out == ""
    assert "acme/web now allows https://app.example.com" in err
    assert origins.allowed_origins(web) == ["https://app.example.com"]
    assert lookup.lookup_platform(web.api_key).origins == {"https://app.example.com"}
    entry = audit_events_for(web).last()
    assert entry.message.startswith("Allowed the origin https://app.example.com")
    assert entry.actor_name == "trusted-identity-cli"


def test_allow_origin_twice_changes_nothing(web):
    run("allow-origin", "acme", "web", "https://app.example.com")
    before = audit_events_for(web).count()
    out, err = run("allow-origin", "acme", "web", "https://app.example.com")
    assert out == ""
    assert "already allowed" in err
    assert audit_events_for(web).count() == before


def test_deny_origin(web):
    run("allow-origin", "acme", "web", "https://a.example")
    run("allow-origin", "acme", "web", "https://b.example")
    out, err = run("deny-origin", "acme", "web", "https://A.example")
    assert out == ""
    assert "no longer allows https://a.example; allowed origins: https://b.example" in err
    assert origins.allowed_origins(web) == ["https://b.example"]
    assert lookup.lookup_platform(web.api_key).origins == {"https://b.example"}
    assert (
        audit_events_for(web)
        .last()
        .message.startswith("Removed the allowed origin https://a.example")
    )


def test_the_actor_option_names_the_user_who_must_hold_a_role(web):
    ops = get_user_model().objects.create(username="ops", is_staff=True)
    with pytest.raises(CommandError, match="may not enforce"):
        run("--actor", "ops", "allow-origin", "acme", "web", "https://a.example")
    SpaceMembership.objects.create(space=web.space, user=ops, role=Role.ADMIN)
    run("--actor", "ops", "allow-origin", "acme", "web", "https://a.example")
    assert audit_events_for(web).last().actor_name == "ops"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("allow-origin", "acme", "web", "https://*.example.com"), "wildcard"),
        (("allow-origin", "acme", "web", "app.example.com"), "no scheme"),
        (("allow-origin", "acme", "web", "https://a.example/path"), "no path"),
        (("allow-origin", "acme", "web", "null"), "null"),
        (("allow-origin", "acme", "ios", "https://a.example"), "only web platforms"),
        (("allow-origin", "acme", "android", "https://a.example"), "no android platform"),
        (("allow-origin", "nope", "web", "https://a.example"), "nope"),
        (("allow-origin", "acme", "web"), "origin"),
        (("deny-origin", "acme", "web", "https://never.example"), "not an allowed origin"),
        (("allow-origin", "acme", "web", "https://a.example\nhttps://b.example"), "spaces"),
    ],
)
def test_errors_are_one_line(web, platform, args, match):
    fails(*args, match=match)
    assert origins.allowed_origins(web) == []


@pytest.mark.end_to_end
def test_subprocess_scripts_see_empty_stdout_and_one_line_errors(cli_env):
    assert manage(cli_env, "create-space", "cors").returncode == 0
    assert manage(cli_env, "add-platform", "cors", "web").returncode == 0
    done = manage(cli_env, "allow-origin", "cors", "web", "http://127.0.0.1:8251")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "http://127.0.0.1:8251" in done.stderr
    for args in (
        ("allow-origin", "cors", "web", "*"),
        ("deny-origin", "cors", "web", "http://localhost:1"),
        ("allow-origin", "cors"),
    ):
        done = manage(cli_env, *args)
        assert done.returncode != 0
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    done = manage(cli_env, "deny-origin", "cors", "web", "http://127.0.0.1:8251")
    assert done.returncode == 0, done.stderr
    assert "allowed origins: none" in done.stderr
