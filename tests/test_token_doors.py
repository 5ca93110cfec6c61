"""The expiring form through the doors: the sign view's ``form=token``, session start over
HTTP with tokens, and the CLI's ``signature-form`` and ``sign --token [--ttl]``
(CONTRACT sections 4, 5 and 9)."""

import json
import re
from datetime import datetime, timedelta

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_identity import runtime
from trusted_identity.models import Platform
from trusted_identity.services import access, enforcement, figures, signature_forms, verification
from trusted_identity.services.verification import sign_for, sign_token_for

from .factories import PASSWORD, PlatformFactory, SpaceFactory, UserFactory
from .test_cli import audit_events_for, fails, manage, run, value_of
from .test_cli import cli_env as cli_env
from .test_http import SIGN, assert_error, assert_json, secret_of, start

JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def set_form(platform, form, **kwargs):
    with_commit = signature_forms.set_signature_form(
        platform, form, access.get_cli_actor(), force=True, reason="test", **kwargs
    )
    runtime.current().reset()  # as the commit's callback would
    return with_commit


@pytest.fixture
def user(db):
    return UserFactory(username="alice", is_staff=False)


@pytest.fixture
def user_client(client, user):
    assert client.login(username="alice", password=PASSWORD)
    return client


def claims_of(token, platform):
    return jwt.decode(token, secret_of(platform), algorithms=["HS256"])


# --------------------------------------------------------------- the sign view


def test_sign_view_form_token(user_client, user, platform):
    set_form(platform, "either")
    response = user_client.get(SIGN, {"platform": "ios", "space": "acme", "form": "token"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = assert_json(response)
    assert set(body) == {"userId", "platform", "signed", "expiresAt"}
    assert (body["userId"], body["platform"]) == (str(user.pk), "ios")
    assert JWT.match(body["signed"]) and ISO_Z.match(body["expiresAt"])
    claims = claims_of(body["signed"], platform)
    assert claims["sub"] == str(user.pk)
    assert claims["exp"] - claims["iat"] == 3600  # TOKEN_TTL
    expires = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")
    assert int(expires.timestamp() - datetime(1970, 1, 1).timestamp()) == claims["exp"]
    # The plain form stays the default, without expiresAt.
    plain = assert_json(user_client.get(SIGN, {"platform": "ios", "space": "acme"}))
    assert set(plain) == {"userId", "platform", "signed"}
    explicit = user_client.get(SIGN, {"platform": "ios", "space": "acme", "form": "plain"})
    assert assert_json(explicit)["signed"] == plain["signed"]
    # What it gave starts a trusted session.
    for signed in (body["signed"], plain["signed"]):
        started = assert_json(
            start(user_client, platform.api_key, {"userId": str(user.pk), "signed": signed})
        )
        assert started["trusted"] is True


def test_sign_view_ttl_is_capped_at_the_platforms_maximum_age(user_client, platform):
    set_form(platform, "token", max_age=timedelta(minutes=10))
    body = assert_json(user_client.get(SIGN, {"platform": "ios", "space": "acme", "form": "token"}))
    claims = claims_of(body["signed"], platform)
    assert claims["exp"] - claims["iat"] == 600


def test_sign_view_refuses_a_form_the_platform_does_not_accept(user_client, platform):
    body = assert_error(
        user_client.get(SIGN, {"platform": "ios", "space": "acme", "form": "token"}),
        400,
        "invalid_request",
    )
    assert "accepts only plain signatures" in body["error"]["message"]
    set_form(platform, "token")
    body = assert_error(
        user_client.get(SIGN, {"platform": "ios", "space": "acme"}), 400, "invalid_request"
    )
    assert "form=token" in body["error"]["message"]


@pytest.mark.parametrize("form", ["", "TOKEN", "jwt", "x" * 200])
def test_sign_view_unknown_form(user_client, platform, form):
    assert_error(
        user_client.get(SIGN, {"platform": "ios", "space": "acme", "form": form}),
        400,
        "invalid_request",
    )
    assert_error(
        user_client.get(SIGN + "?platform=ios&space=acme&form=token&form=token"),
        400,
        "invalid_request",
    )


# --------------------------------------------------------- session start, HTTP


def test_tokens_over_http_with_enforcement_one_public_answer(client, platform):
    set_form(platform, "token")
    enforcement.set_enforcement(platform, True, access.get_cli_actor(), force=True, reason="t")
    runtime.current().reset()
    good = sign_token_for("acme", "ios", "u-1").token
    created = assert_json(start(client, platform.api_key, {"userId": "u-1", "signed": good}))
    assert (created["trusted"], created["signature"]) == (True, "valid")
    other_user = sign_token_for("acme", "ios", "u-2").token
    bodies = set()
    for signed in (
        sign_for("acme", "ios", "u-1"),  # plain, refused by the policy
        other_user,
        good[:-1] + ("A" if good[-1] != "A" else "B"),
        good.rsplit(".", 1)[0] + "." + "A" * 43,
        "a.b.c",
        "x" * 300 + ".y.z",
    ):
        response = start(client, platform.api_key, {"userId": "u-1", "signed": signed})
        assert_error(response, 403, "signature_invalid")
        bodies.add(response.content)
    assert len(bodies) == 1  # the same words for every reason: no oracle


def test_a_warm_token_start_reads_nothing(client, platform, counts_as_served):
    set_form(platform, "either")
    good = sign_token_for("acme", "ios", "u-1").token
    body = {"userId": "u-1", "signed": good}
    assert start(client, platform.api_key, body).status_code == 201
    fresh = {
        "userId": "u-1",
        "signed": sign_token_for("acme", "ios", "u-1", timedelta(minutes=5)).token,
    }
    with CaptureQueriesContext(connection) as queries:
        assert assert_json(start(client, platform.api_key, body))["trusted"]
        assert assert_json(start(client, platform.api_key, fresh))["trusted"]
    assert queries.captured_queries == []
    assert figures.readiness(platform).valid == 3  # flushed by the figures read


def test_a_policy_change_reaches_a_warm_process_at_once(
    client, platform, django_capture_on_commit_callbacks
):
    good = sign_token_for("acme", "ios", "u-1").token
    body = {"userId": "u-1", "signed": good}
    assert assert_json(start(client, platform.api_key, body))["signature"] == "invalid"
    with django_capture_on_commit_callbacks(execute=True):
        signature_forms.set_signature_form(platform, "either", access.get_cli_actor())
    assert assert_json(start(client, platform.api_key, body))["signature"] == "valid"


def test_an_overlong_token_is_a_400_and_a_long_one_is_read(client, platform):
    set_form(platform, "either")
    long_id = "u" * 1024
    token = sign_token_for("acme", "ios", long_id).token
    assert assert_json(start(client, platform.api_key, {"userId": long_id, "signed": token}))[
        "trusted"
    ]
    assert_error(
        start(client, platform.api_key, {"userId": "u", "signed": "a.b." + "c" * 5000}),
        400,
        "invalid_request",
    )


# ----------------------------------------------------------------------- the CLI


def test_signature_form_cli_audited(platform):
    out, err = run("signature-form", "acme", "ios", "either", "--max-age", "2h")
    assert out == ""
    assert (
        err.strip()
        == "acme/ios accepts plain signatures and tokens; a token may live at most 2 hours."
    )
    platform.refresh_from_db()
    assert (platform.signature_form, platform.token_max_age) == ("either", 7200)
    assert (
        audit_events_for(platform)
        .last()
        .message.startswith("Signature form: plain -> either. Maximum token age: 1 day -> 2 hours.")
    )


def test_signature_form_token_follows_the_readiness_rule(platform):
    message = fails("signature-form", "acme", "ios", "token", match="not enough starts to tell")
    assert message.endswith("(use --force with --reason)")
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"
    run("signature-form", "acme", "ios", "token", "--force", "--reason", "all clients on v3")
    assert Platform.objects.get(pk=platform.pk).signature_form == "token"
    assert "override reason: all clients on v3" in audit_events_for(platform).last().message


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("token-ish",), "invalid choice"),
        (("either", "--max-age", "5"), "needs a unit"),
        (("either", "--max-age", "30s"), "between 1 minute and 7 days"),
        (("either", "--max-age", "8d"), "between 1 minute and 7 days"),
        (("either", "--max-age", "1y"), "invalid duration"),
    ],
)
def test_signature_form_cli_errors_are_one_line(platform, args, match):
    fails("signature-form", "acme", "ios", *args, match=match)
    assert Platform.objects.get(pk=platform.pk).signature_form == "plain"


def test_signature_form_cli_checks_the_actor(platform):
    UserFactory(username="vic")
    fails(
        "--actor", "vic", "signature-form", "acme", "ios", "either", match="may not|role|permission"
    )
    fails("signature-form", "nope", "ios", "either", match="nope")


def test_sign_token_cli(platform, monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: 1_800_000_000)
    set_form(platform, "either")
    out, err = run("sign", "acme", "ios", "42", "--token", "--ttl", "30m")
    token = value_of(out)
    assert JWT.match(token)
    entry = audit_events_for(platform).last().message
    assert "Signed user id '42'" in entry and "as a token valid until" in entry
    assert token not in entry
    claims = jwt.decode(
        token,
        secret_of(platform),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"sub": "42", "iat": 1_800_000_000, "exp": 1_800_001_800}
    assert "valid until 2027-01-15T08:30:00Z" in err and token not in err
    out, _ = run("sign", "acme", "ios", "42", "--token")
    claims = jwt.decode(
        value_of(out),
        secret_of(platform),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["exp"] - claims["iat"] == 3600


def test_sign_token_cli_on_a_plain_platform_says_so(platform):
    out, err = run("sign", "acme", "ios", "42", "--token")
    assert JWT.match(value_of(out))
    assert "accepts only plain signatures" in err


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--ttl", "1h"), "--ttl needs --token"),
        (("--token", "--ttl", "2d"), "may live at most 1 day"),
        (("--token", "--ttl", "0"), "at least one second"),
        (("--token", "--ttl", "5"), "needs a unit"),
    ],
)
def test_sign_token_cli_errors(platform, args, match):
    fails("sign", "acme", "ios", "42", *args, match=match)


@pytest.mark.end_to_end
def test_subprocess_sign_token_prints_one_line(cli_env):
    assert manage(cli_env, "create-space", "tok").returncode == 0
    assert manage(cli_env, "add-platform", "tok", "web").returncode == 0
    done = manage(cli_env, "signature-form", "tok", "web", "either", "--max-age", "1h")
    assert done.returncode == 0 and done.stdout == "", done.stderr
    signed = manage(cli_env, "sign", "tok", "web", "42", "--token", "--ttl", "10m")
    assert signed.returncode == 0, signed.stderr
    assert JWT.match(signed.stdout.strip()) and signed.stdout.count("\n") == 1
    secret = manage(cli_env, "show-secret", "tok", "web").stdout.strip()
    claims = jwt.decode(signed.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["sub"], claims["exp"] - claims["iat"]) == ("42", 600)
    refused = manage(cli_env, "sign", "tok", "web", "42", "--token", "--ttl", "2h")
    assert refused.returncode != 0 and refused.stdout == ""
    assert len(refused.stderr.splitlines()) == 1 and "Traceback" not in refused.stderr
    status = json.loads(manage(cli_env, "status", "tok", "--json").stdout)
    web = status["spaces"][0]["platforms"][0]
    assert (web["signature_form"], web["token_max_age"]) == ("either", 3600)


def test_other_spaces_are_untouched(platform):
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="ios")
    run("signature-form", "acme", "ios", "either")
    assert Platform.objects.get(pk=other.pk).signature_form == "plain"


@pytest.mark.parametrize("value", ["60", -1, None, True])
def test_a_bad_token_setting_is_a_503_naming_it_in_the_log(
    client, platform, settings, caplog, value
):
    set_form(platform, "either")
    token = sign_token_for("acme", "ios", "u").token
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "TOKEN_LEEWAY": value}
    response = start(client, platform.api_key, {"userId": "u", "signed": token})
    assert_error(response, 503, "service_unavailable")
    must_be = "must be a number of seconds (or a timedelta)"
    assert f"TRUSTED_IDENTITY['TOKEN_LEEWAY'] {must_be}" in caplog.text
