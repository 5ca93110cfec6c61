"""The sign view (CONTRACT section 4): the logged-in user's id signed, for this site's
spaces only, with its errors and its rate limit.
"""

import json

import pytest
from django.test import Client

from trusted_identity import signing
from trusted_identity.services import access, platform_secrets

from .factories import PASSWORD, PlatformFactory, SpaceFactory, UserFactory
from .support import wait_out_window_edge
from .test_http import (  # noqa: F401
    HEX64,
    SIGN,
    assert_error,
    assert_json,
    debug,
    enforced,
    secret_of,
    set_app_settings,
    start,
    user,
    user_client,
)

# ----------------------------------------------------------------- the sign view


def test_sign_current_user(user_client, user, platform):
    response = user_client.get(SIGN, {"platform": "ios", "space": "acme"})
    assert response.status_code == 200
    body = assert_json(response)
    assert body == {
        "userId": str(user.pk),
        "platform": "ios",
        "signed": signing.sign(secret_of(platform), str(user.pk)),
    }
    assert HEX64.match(body["signed"])
    assert "no-store" in response["Cache-Control"]


def test_signature_from_the_sign_view_starts_a_trusted_session(client, user_client, enforced):
    body = assert_json(user_client.get(SIGN, {"platform": "android", "space": "acme"}))
    response = start(
        Client(), enforced.api_key, {"userId": body["userId"], "signed": body["signed"]}
    )
    assert response.status_code == 201
    assert assert_json(response)["trusted"] is True


def test_sign_platform_from_header(user_client, user, platform):
    response = user_client.get(SIGN, {"space": "acme"}, HTTP_X_TRUSTED_IDENTITY_PLATFORM="ios")
    assert response.status_code == 200
    assert assert_json(response)["signed"] == signing.sign(secret_of(platform), str(user.pk))


def test_sign_query_parameter_wins_over_header(user_client, platform, space):
    web = PlatformFactory(space=space, kind="web")
    response = user_client.get(
        SIGN, {"space": "acme", "platform": "web"}, HTTP_X_TRUSTED_IDENTITY_PLATFORM="ios"
    )
    body = assert_json(response)
    assert body["platform"] == "web"
    assert body["signed"] == signing.sign(secret_of(web), body["userId"])


def test_sign_space_from_setting(user_client, user, platform, settings):
    set_app_settings(settings, SIGNING_SPACE="acme")
    response = user_client.get(SIGN, {"platform": "ios"})
    assert response.status_code == 200
    assert assert_json(response)["signed"] == signing.sign(secret_of(platform), str(user.pk))


def test_sign_space_parameter_wins_over_setting(user_client, platform, settings):
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="ios")
    set_app_settings(settings, SIGNING_SPACE="acme")
    body = assert_json(user_client.get(SIGN, {"platform": "ios", "space": "other"}))
    assert body["signed"] == signing.sign(secret_of(other), body["userId"])


def test_sign_uses_the_configured_user_attribute(user_client, user, platform, settings):
    set_app_settings(settings, USER_ID_ATTRIBUTE="username")
    body = assert_json(user_client.get(SIGN, {"platform": "ios", "space": "acme"}))
    assert body["userId"] == "alice"
    assert body["signed"] == signing.sign(secret_of(platform), "alice")


def test_sign_after_rotation_uses_the_new_secret(
    user_client, user, platform, django_capture_on_commit_callbacks
):
    user_client.get(SIGN, {"platform": "ios", "space": "acme"})
    with django_capture_on_commit_callbacks(execute=True):
        new = platform_secrets.rotate_secret(platform, access.get_cli_actor())
    body = assert_json(user_client.get(SIGN, {"platform": "ios", "space": "acme"}))
    assert body["signed"] == signing.sign(new, str(user.pk))


def test_sign_anonymous(client, platform, debug):
    response = client.get(SIGN, {"platform": "ios", "space": "acme"})
    assert_error(response, 401, "not_authenticated")


def test_sign_inactive_session_user_is_anonymous(user_client, user, platform):
    user.is_active = False
    user.save()
    response = user_client.get(SIGN, {"platform": "ios", "space": "acme"})
    assert_error(response, 401, "not_authenticated")


@pytest.mark.parametrize(
    "params",
    [
        {"platform": "ios", "space": "nope"},
        {"platform": "roku", "space": "acme"},  # a known kind the space doesn't have
        {"platform": "playstation", "space": "acme"},
        {"platform": "IOS", "space": "acme"},
        {"platform": "ios", "space": "ACME"},
        {"platform": "ios", "space": "\x00"},
        {"platform": "ios", "space": "../acme"},
    ],
)
def test_sign_platform_not_found(user_client, platform, debug, params):
    assert_error(user_client.get(SIGN, params), 404, "platform_not_found")


@pytest.mark.parametrize(
    "query",
    [
        "space=acme",  # no platform
        "platform=&space=acme",
        "platform=ios&space=",  # an empty space is no space, and there is no SIGNING_SPACE
        "platform=ios",
        "platform=ios&platform=web&space=acme",
        "platform=ios&space=acme&space=other",
        "platform=" + "i" * 200 + "&space=acme",
    ],
)
def test_sign_invalid_request(user_client, platform, debug, query):
    assert_error(user_client.get(SIGN + "?" + query), 400, "invalid_request")


def test_sign_empty_header_is_invalid(user_client, platform):
    response = user_client.get(SIGN, {"space": "acme"}, HTTP_X_TRUSTED_IDENTITY_PLATFORM="")
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_sign_other_methods(user, platform, debug, method):
    # A real browser client: CSRF checks on. Still the JSON 405, never Django's HTML 403.
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(user)
    response = getattr(csrf_client, method)(SIGN + "?platform=ios&space=acme")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_sign_head(user_client, platform):
    response = user_client.head(SIGN, {"platform": "ios", "space": "acme"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_sign_rate_limit(user_client, platform, settings):
    set_app_settings(settings, SIGN_RATE_LIMIT="2/m")
    wait_out_window_edge(60)
    for _ in range(2):
        assert user_client.get(SIGN, {"platform": "ios", "space": "acme"}).status_code == 200
    response = user_client.get(SIGN, {"platform": "ios", "space": "acme"})
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60

    # The limit is per user: another user still gets signed.
    UserFactory(username="bob")
    other = Client()
    assert other.login(username="bob", password=PASSWORD)
    assert other.get(SIGN, {"platform": "ios", "space": "acme"}).status_code == 200


# --------------------------------------------- the sign view signs for this site only


def _sign_error(user_client, space, kind="web"):
    response = user_client.get(SIGN, {"platform": kind, "space": space})
    return assert_error(response, 404, "platform_not_found")["error"]


def test_sign_refuses_a_space_this_site_does_not_serve(user_client, user, space, settings):
    """A user of this site can't get a signature that another space's enforced platform
    accepts (issue 9, finding 4): the space is answered exactly as an unknown one."""
    set_app_settings(settings, SIGNING_SPACES=["acme"])
    PlatformFactory(space=space, kind="web")
    beta = PlatformFactory(space=SpaceFactory(slug="beta"), kind="web", enforced=True)
    PlatformFactory(space=beta.space, kind="ios")

    assert user_client.get(SIGN, {"platform": "web", "space": "acme"}).status_code == 200
    refused = _sign_error(user_client, "beta")
    unknown = _sign_error(user_client, "gamma")
    assert refused["message"].replace("beta", "?") == unknown["message"].replace("gamma", "?")
    # No oracle either for which platforms the other space has, or which kinds exist.
    for kind in ("ios", "roku"):
        assert _sign_error(user_client, "beta", kind) == refused
        assert _sign_error(user_client, "gamma", kind) == unknown
    response = user_client.get(SIGN, {"platform": "playstation", "space": "beta"})
    same = user_client.get(SIGN, {"platform": "playstation", "space": "gamma"})
    assert (response.status_code, json.loads(response.content)) == (
        same.status_code,
        json.loads(same.content),
    )
    # And beta's enforced platform still refuses this user's id unsigned.
    assert start(Client(), beta.api_key, {"userId": str(user.pk)}).status_code == 403


def test_sign_spaces_default_is_the_signing_space_alone(user_client, space, settings):
    PlatformFactory(space=space, kind="web")
    PlatformFactory(space=SpaceFactory(slug="beta"), kind="web")
    set_app_settings(settings, SIGNING_SPACE="acme", SIGNING_SPACES=None)
    assert user_client.get(SIGN, {"platform": "web"}).status_code == 200
    assert user_client.get(SIGN, {"platform": "web", "space": "acme"}).status_code == 200
    _sign_error(user_client, "beta")
    # Neither setting: the view signs for no space at all.
    set_app_settings(settings, SIGNING_SPACE=None, SIGNING_SPACES=None)
    _sign_error(user_client, "acme")


def test_sign_spaces_as_a_comma_separated_string(user_client, space, settings):
    PlatformFactory(space=space, kind="web")
    PlatformFactory(space=SpaceFactory(slug="beta"), kind="web")
    PlatformFactory(space=SpaceFactory(slug="gamma"), kind="web")
    set_app_settings(settings, SIGNING_SPACES=" acme, beta ,")
    for slug in ("acme", "beta"):
        assert user_client.get(SIGN, {"platform": "web", "space": slug}).status_code == 200
    _sign_error(user_client, "gamma")


def test_a_signing_space_the_view_does_not_serve_is_a_check_warning(settings):
    from django.core.checks import run_checks

    set_app_settings(settings, SIGNING_SPACE="acme", SIGNING_SPACES=["beta"])
    assert "trusted_identity.W003" in [message.id for message in run_checks()]
    set_app_settings(settings, SIGNING_SPACES=None)
    assert "trusted_identity.W003" not in [message.id for message in run_checks()]
