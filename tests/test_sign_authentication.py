"""Who the sign view signs (``TRUSTED_IDENTITY["SIGN_AUTHENTICATION"]``), and the Python
API ``trusted_identity.sign_user_id`` for sites that sign in views of their own.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser

import trusted_identity
from trusted_identity import api, signing
from trusted_identity.exceptions import PlatformNotFound, SpaceNotFound
from trusted_identity.services import access, platform_secrets

from .factories import PlatformFactory, UserFactory

rest_framework = pytest.importorskip("rest_framework")
from rest_framework.authtoken.models import Token  # noqa: E402

SIGN = "/trusted-identity/sign/"
TOKEN = "rest_framework.authentication.TokenAuthentication"
SESSION = "trusted_identity.authentication.session_user"
HEADER_USER = "tests.test_sign_authentication.header_user"


def header_user(request):
    """A site's own authentication: a user named by a header (tests only)."""
    from django.contrib.auth import get_user_model

    name = request.headers.get("X-Test-User")
    return get_user_model().objects.filter(username=name).first() if name else None


@pytest.fixture
def user(db):
    return UserFactory(username="ann", is_staff=False)


@pytest.fixture
def token(user):
    return Token.objects.create(user=user).key


@pytest.fixture
def authentication(settings):
    def configure(value):
        settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "SIGN_AUTHENTICATION": value}

    return configure


def sign(client, **headers):
    return client.get(SIGN, {"platform": "ios", "space": "acme"}, **headers)


def signed_for(response, user, platform):
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    secret = platform_secrets.reveal_secret(platform, access.get_cli_actor())
    assert body == {
        "userId": str(user.pk),
        "platform": "ios",
        "signed": signing.sign(secret, str(user.pk)),
    }
    assert response["Cache-Control"] == "no-store"
    return body


def refused(response, message=None):
    assert response.status_code == 401, response.content
    error = json.loads(response.content)["error"]
    assert error["code"] == "not_authenticated"
    if message:
        assert message in error["message"]


# ------------------------------------------------------------- the default: session


def test_by_default_the_session_login_signs_and_a_token_does_not(client, user, token, platform):
    refused(sign(client, HTTP_AUTHORIZATION=f"Token {token}"))
    client.force_login(user)
    signed_for(sign(client), user, platform)


# ------------------------------------------------------------------ DRF's classes


def test_drf_token_authentication(client, user, token, platform, authentication):
    authentication([TOKEN])
    signed_for(sign(client, HTTP_AUTHORIZATION=f"Token {token}"), user, platform)
    refused(sign(client))  # no token
    refused(sign(client, HTTP_AUTHORIZATION="Token nope"), "Invalid token")
    refused(sign(client, HTTP_AUTHORIZATION="Token"), "No credentials provided")
    client.force_login(user)
    refused(sign(client))  # the session is not configured


def test_a_dotted_path_alone_works_like_a_list(client, user, token, platform, authentication):
    authentication(TOKEN)
    signed_for(sign(client, HTTP_AUTHORIZATION=f"Token {token}"), user, platform)


def test_a_token_of_an_inactive_user_is_refused(client, user, token, platform, authentication):
    authentication([TOKEN])
    user.is_active = False
    user.save()
    refused(sign(client, HTTP_AUTHORIZATION=f"Token {token}"), "inactive")


def test_token_then_session_both_work(client, user, token, platform, authentication):
    authentication([TOKEN, SESSION])
    other = UserFactory(username="bob")
    signed_for(sign(client, HTTP_AUTHORIZATION=f"Token {token}"), user, platform)
    client.force_login(other)
    signed_for(sign(client), other, platform)
    # Both given: the first authenticator that names a user wins.
    signed_for(sign(client, HTTP_AUTHORIZATION=f"Token {token}"), user, platform)


def test_drf_session_authentication_on_a_get(client, user, platform, authentication):
    authentication(["rest_framework.authentication.SessionAuthentication"])
    refused(sign(client))
    client.force_login(user)
    signed_for(sign(client), user, platform)


def test_the_rate_limit_counts_the_authenticated_user(
    client, user, token, platform, authentication, settings
):
    authentication([TOKEN])
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "SIGN_RATE_LIMIT": "1/m"}
    signed_for(sign(client, HTTP_AUTHORIZATION=f"Token {token}"), user, platform)
    response = sign(client, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 429
    other = Token.objects.create(user=UserFactory(username="carl")).key
    assert sign(client, HTTP_AUTHORIZATION=f"Token {other}").status_code == 200


# -------------------------------------------------------------- a callable of the site


def test_a_callable_by_dotted_path(client, user, platform, authentication):
    authentication([HEADER_USER])
    signed_for(sign(client, HTTP_X_TEST_USER="ann"), user, platform)
    refused(sign(client, HTTP_X_TEST_USER="nobody"))
    refused(sign(client))


def test_a_callable_given_as_an_object(client, user, platform, authentication):
    authentication([header_user])
    signed_for(sign(client, HTTP_X_TEST_USER="ann"), user, platform)


def test_an_anonymous_user_from_a_callable_is_a_visitor(client, platform, authentication):
    authentication([lambda request: AnonymousUser()])
    refused(sign(client))


@pytest.mark.parametrize(
    "value",
    [
        ["tests.no_such_module.authenticate"],
        ["trusted_identity.models.Space"],  # a class without authenticate()
        ["trusted_identity.conf.DEFAULTS"],  # not callable
        [],
    ],
    ids=["unimportable", "class-without-authenticate", "not-callable", "empty"],
)
def test_a_broken_setting_is_a_503_named_in_the_log(
    client, user, platform, authentication, value, caplog
):
    authentication(value)
    client.force_login(user)
    response = sign(client)
    assert response.status_code == 503
    assert json.loads(response.content)["error"]["code"] == "service_unavailable"
    assert "SIGN_AUTHENTICATION" in caplog.text


def failing_authentication(request):
    """An authentication whose backend fails (tests only): not the client's fault."""
    raise AttributeError("type object 'Token' has no attribute 'DoesNotExist'")


def test_an_authentication_that_fails_at_run_time_is_a_503_not_a_500(
    client, user, platform, authentication, caplog
):
    authentication(["tests.test_sign_authentication.failing_authentication"])
    response = sign(client, HTTP_AUTHORIZATION="Token abc")
    assert response.status_code == 503
    error = json.loads(response.content)["error"]
    assert error["code"] == "service_unavailable"
    assert "DoesNotExist" not in error["message"]  # the reason is for the log, not the client
    assert "failing_authentication failed" in caplog.text


def test_token_authentication_without_authtoken_installed_fails_the_check(settings):
    """The documentation's DRF snippet (docs/adopting.md) pasted without
    ``rest_framework.authtoken``: a system check error at start (E009), not a 500 on
    every signed request."""
    from django.apps import apps
    from django.core import checks
    from django.test.utils import modify_settings

    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "SIGN_AUTHENTICATION": [TOKEN]}
    assert not [e for e in checks.run_checks() if e.id == "trusted_identity.E009"]
    with modify_settings(INSTALLED_APPS={"remove": ["rest_framework.authtoken"]}):
        errors = [e for e in checks.run_checks() if e.id == "trusted_identity.E009"]
    assert len(errors) == 1
    assert "TokenAuthentication" in errors[0].msg
    assert "rest_framework.authtoken" in errors[0].hint
    assert apps.is_installed("rest_framework.authtoken")  # restored


# ------------------------------------------------------- trusted_identity.sign_user_id


def test_sign_user_id_signs_with_the_current_secret(platform):
    secret = platform_secrets.reveal_secret(platform, access.get_cli_actor())
    assert trusted_identity.sign_user_id("acme", "ios", "42") == signing.sign(secret, "42")
    assert trusted_identity.sign_user_id(platform.space, "ios", 42) == signing.sign(secret, "42")
    assert trusted_identity.sign_user_id("acme", "ios", " 42") == signing.sign(secret, " 42")
    assert trusted_identity.sign_user_id is api.sign_user_id
    assert "sign_user_id" in dir(trusted_identity)


def test_sign_user_id_verifies_in_a_session_start(client, space):
    web = PlatformFactory(space=space, kind="web", enforced=True)
    signed = trusted_identity.sign_user_id(space, "web", "user-7")
    response = client.post(
        "/trusted-identity/v1/sessions",
        data=json.dumps({"userId": "user-7", "signed": signed}),
        content_type="application/json",
        HTTP_X_API_KEY=web.api_key,
    )
    assert response.status_code == 201
    assert json.loads(response.content)["trusted"] is True


def test_sign_user_id_errors(platform):
    with pytest.raises(SpaceNotFound):
        trusted_identity.sign_user_id("nope", "ios", "1")
    with pytest.raises(PlatformNotFound):
        trusted_identity.sign_user_id("acme", "roku", "1")
    with pytest.raises(PlatformNotFound):
        trusted_identity.sign_user_id("acme", "playstation", "1")
    for bad in (None, True, 1.5, b"1"):
        with pytest.raises(TypeError):
            trusted_identity.sign_user_id("acme", "ios", bad)
    with pytest.raises(ValueError, match="empty"):
        trusted_identity.sign_user_id("acme", "ios", "")
    with pytest.raises(TypeError):
        trusted_identity.sign_user_id(None, "ios", "1")


def test_importing_the_package_loads_no_django_model():
    code = (
        "import sys, trusted_identity\n"
        "assert trusted_identity.__version__\n"
        "assert 'trusted_identity.models' not in sys.modules, 'models imported'\n"
        "assert 'django.db.models' not in sys.modules, 'django.db.models imported'\n"
        "try:\n"
        "    trusted_identity.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
