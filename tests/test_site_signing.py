"""The site's producers sign public-key platforms with its private key
(``TRUSTED_IDENTITY["PRIVATE_KEYS"]``, CONTRACT section 10): the sign view, the template
tag and ``trusted_identity.sign_user_id``; each token starts a trusted session on both
paths. When the key is used (key source ``both`` or ``public-key``), what each form
gives, and what an unusable key does (``both``: the secret, logged once;
``public-key``: a 503 / ImproperlyConfigured naming the entry, never the key)."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import jwt
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import RequestFactory

import trusted_identity
from trusted_identity.exceptions import InvalidRequest, PublicKeysOnly
from trusted_identity.publickeys import generate_key_pair
from trusted_identity.services import (
    access,
    key_sources,
    lookup,
    public_keys,
    signature_forms,
    site_keys,
    verification,
)

from . import hardening
from .factories import PASSWORD, PlatformFactory, UserFactory
from .keytoken_helpers import NOW
from .test_http import SIGN, assert_error, assert_json, start

PAIRS = {alg: generate_key_pair(alg) for alg in ("ES256", "EdDSA", "RS256")}
KIDS = {"ES256": "site-ec", "EdDSA": "site-ed", "RS256": "site-rsa"}
HEX = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


@pytest.fixture
def user(db):
    return UserFactory(username="alice", is_staff=False)


@pytest.fixture
def user_client(client, user):
    assert client.login(username="alice", password=PASSWORD)
    return client


def add_key(platform, alg="ES256", commit=None, **kwargs):
    with commit(execute=True):
        return public_keys.add_public_key(
            platform, PAIRS[alg][1], access.get_cli_actor(), kid=KIDS[alg], **kwargs
        )


def set_source(platform, source, commit):
    with commit(execute=True):
        key_sources.set_key_source(
            platform, source, access.get_cli_actor(), force=True, reason="test"
        )


def give_site(settings, alg="ES256", name="acme/web", value=None):
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "PRIVATE_KEYS": {name: PAIRS[alg][0] if value is None else value},
    }


def sign_view(client, **query):
    return client.get(SIGN, {"platform": "web", "space": "acme", **query})


def header_of(token):
    return jwt.get_unverified_header(token)


def assert_starts_trusted(client, platform, user_id, signed, form="public-key"):
    answer = assert_json(start(client, platform.api_key, {"userId": user_id, "signed": signed}))
    assert (answer["signature"], answer["trusted"]) == ("valid", True)
    snapshot = lookup.lookup_platform(platform.api_key)
    assert verification.verify_signed(snapshot, user_id, signed).form == form


def no_private_key_anywhere(*texts):
    bodies = ["".join(PAIRS[alg][0].splitlines()[1:-1]) for alg in PAIRS]
    for text in [*texts, *hardening.LOG.texts]:
        for body in bodies:
            assert body[:40] not in text and body[-40:] not in text


# --------------------------------------------------------------- the sign view


@pytest.mark.both_paths
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_form_token_on_a_both_platform_is_the_sites_public_key_token(
    settings, user_client, user, web, alg, django_capture_on_commit_callbacks
):
    add_key(web, alg, django_capture_on_commit_callbacks)
    set_source(web, "both", django_capture_on_commit_callbacks)
    give_site(settings, alg)
    body = assert_json(sign_view(user_client, form="token"))
    token = body["signed"]
    assert header_of(token) == {"alg": alg, "typ": "JWT", "kid": KIDS[alg]}
    claims = jwt.decode(
        token, PAIRS[alg][1], algorithms=[alg], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {"sub": str(user.pk), "iat": NOW, "exp": NOW + 3600}  # TOKEN_TTL
    assert body["expiresAt"] == "2027-01-15T09:00:00Z"  # NOW + TOKEN_TTL, in UTC
    assert_starts_trusted(user_client, web, str(user.pk), token)
    # Without a form, callers that never asked for a token keep the plain form.
    assert HEX.match(assert_json(sign_view(user_client))["signed"])
    no_private_key_anywhere(token)


def test_the_expiry_is_the_tokens_exp_within_the_platforms_maximum_age(
    settings, user_client, web, django_capture_on_commit_callbacks
):
    add_key(web, "EdDSA", django_capture_on_commit_callbacks)
    set_source(web, "both", django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        signature_forms.set_signature_form(
            web, "plain", access.get_cli_actor(), max_age=timedelta(minutes=20)
        )
    give_site(settings, "EdDSA")
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "TOKEN_TTL": timedelta(hours=2)}
    # A plain-only signature form is the secret's: the site's public-key token is taken.
    body = assert_json(sign_view(user_client, form="token"))
    claims = jwt.decode(body["signed"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 1200
    assert body["expiresAt"] == "2027-01-15T08:20:00Z"  # NOW + 20 minutes, in UTC


def test_a_secret_platform_keeps_its_secret_while_the_key_waits(
    settings, user_client, web, django_capture_on_commit_callbacks
):
    """Configured before the move, the key is not used: on a ``secret`` platform its
    tokens would be ``form_not_allowed``."""
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    give_site(settings)
    with django_capture_on_commit_callbacks(execute=True):
        signature_forms.set_signature_form(web, "either", access.get_cli_actor())
    token = assert_json(sign_view(user_client, form="token"))["signed"]
    assert header_of(token)["alg"] == "HS256"
    # And from the moment the platform takes public keys, the site signs with its key.
    set_source(web, "both", django_capture_on_commit_callbacks)
    assert header_of(assert_json(sign_view(user_client, form="token"))["signed"])["alg"] == "ES256"


@pytest.mark.both_paths
def test_a_public_key_platform_gets_tokens_only(
    settings, user_client, user, web, django_capture_on_commit_callbacks
):
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    give_site(settings)
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    for query in ({}, {"form": "token"}):
        body = assert_json(sign_view(user_client, **query))
        assert set(body) == {"userId", "platform", "signed", "expiresAt"}
        assert header_of(body["signed"])["kid"] == "site-ec"
        assert_starts_trusted(user_client, web, str(user.pk), body["signed"])
    refused = assert_error(sign_view(user_client, form="plain"), 400, "invalid_request")
    assert refused["error"]["message"] == (
        "this platform accepts only public-key tokens: ask with form=token"
    )


def test_a_public_key_platform_the_site_has_no_key_for_says_where_one_goes(
    user_client, web, django_capture_on_commit_callbacks
):
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    body = assert_error(sign_view(user_client), 409, "public_keys_only")
    assert "TRUSTED_IDENTITY['PRIVATE_KEYS']" in body["error"]["message"]


def test_a_key_that_is_none_of_the_platforms_falls_back_or_fails(
    settings, user_client, user, web, django_capture_on_commit_callbacks, caplog
):
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    set_source(web, "both", django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):  # HS256 tokens are taken too
        signature_forms.set_signature_form(web, "either", access.get_cli_actor())
    give_site(settings, "EdDSA")  # a key pair whose public half the platform never got
    caplog.set_level(logging.ERROR, "trusted_identity")
    for _ in range(3):
        token = assert_json(sign_view(user_client, form="token"))["signed"]
        assert header_of(token)["alg"] == "HS256"  # the secret signs: nobody is locked out
        assert_starts_trusted(user_client, web, str(user.pk), token, form="token")
    logged = [r.getMessage() for r in caplog.records if "instead of the site's" in r.getMessage()]
    assert len(logged) == 1  # once per process, not per request
    assert "['acme/web'] is the private half of none of the platform's public keys" in logged[0]
    # Public keys only: nothing else can sign, so the operator is told and the user gets a 503.
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    failed = assert_error(sign_view(user_client), 503, "service_unavailable")
    assert "PRIVATE_KEYS" not in failed["error"]["message"]
    assert any("misconfigured" in r.getMessage() for r in caplog.records)
    no_private_key_anywhere(token, str(failed))


def test_an_expired_platform_key_stops_the_site_signing_with_its_private_half(
    settings, user_client, web, django_capture_on_commit_callbacks
):
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    add_key(web, "EdDSA", django_capture_on_commit_callbacks)
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    give_site(settings, "ES256")
    assert header_of(assert_json(sign_view(user_client))["signed"])["kid"] == "site-ec"
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.expire_public_key(web, "site-ec", access.get_cli_actor())
    assert_error(sign_view(user_client), 503, "service_unavailable")
    give_site(settings, "EdDSA")  # the rotation's new key
    assert header_of(assert_json(sign_view(user_client))["signed"])["kid"] == "site-ed"


def test_a_key_is_parsed_once_per_process(
    settings, user_client, web, monkeypatch, django_capture_on_commit_callbacks
):
    add_key(web, "RS256", django_capture_on_commit_callbacks)
    set_source(web, "both", django_capture_on_commit_callbacks)
    give_site(settings, "RS256")
    loads = []
    real = site_keys.load_private_key
    monkeypatch.setattr(site_keys, "load_private_key", lambda v: loads.append(1) or real(v))
    tokens = {assert_json(sign_view(user_client, form="token"))["signed"] for _ in range(4)}
    assert len(loads) == 1 and len(tokens) == 1  # same second, same RS256 signature
    with django_capture_on_commit_callbacks(execute=True):  # a new key set: matched again,
        add_key(web, "EdDSA", django_capture_on_commit_callbacks)  # never parsed again
    assert header_of(assert_json(sign_view(user_client, form="token"))["signed"])["alg"] == "RS256"
    assert len(loads) == 1


# ------------------------------------------------------------ the template tag


def render(user=None, **arguments):
    request = RequestFactory().get("/page/")
    request.user = user if user is not None else AnonymousUser()
    spelt = " ".join(f'{name}="{value}"' for name, value in arguments.items())
    source = '{% load trusted_identity %}{% trusted_identity_config "web" space="acme" ' + spelt
    return Template(source + " %}").render(Context({"request": request}))


def config_of(html):
    return json.loads(re.search(r">(.*)</script>", html, re.S).group(1))


def test_the_tag_moves_its_pages_to_public_key_tokens_when_the_platform_takes_them(
    settings, client, user, web, django_capture_on_commit_callbacks
):
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    give_site(settings)
    assert "form" not in config_of(render(user))  # secret: plain, as before
    set_source(web, "both", django_capture_on_commit_callbacks)
    visitor = config_of(render())
    assert visitor["form"] == "token" and visitor["signEndpoint"].endswith("&form=token")
    config = config_of(render(user))
    assert (config["form"], header_of(config["signed"])["alg"]) == ("token", "ES256")
    assert config["expiresAt"] == "2027-01-15T09:00:00Z"
    assert_starts_trusted(client, web, str(user.pk), config["signed"])
    assert HEX.match(config_of(render(user, form="plain"))["signed"])  # asked for: as before


def test_the_tag_fails_where_it_is_developed_for_a_platform_it_can_not_sign(
    settings, user, web, django_capture_on_commit_callbacks
):
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    for who in (None, user):  # a visitor's page too
        with pytest.raises(ImproperlyConfigured, match=r"has no 'acme/web'"):
            render(who)
    give_site(settings, "EdDSA")  # a key that is none of the platform's
    with pytest.raises(ImproperlyConfigured, match=r"private half of none") as info:
        render(user)
    no_private_key_anywhere(str(info.value))
    give_site(settings)
    with pytest.raises(ImproperlyConfigured, match="accepts only public-key tokens"):
        render(user, form="plain")
    assert header_of(config_of(render(user))["signed"])["kid"] == "site-ec"


# ------------------------------------------------------------------ the API


def test_sign_user_id_signs_as_the_sign_view_whatever_the_policy(
    settings, client, web, django_capture_on_commit_callbacks
):
    add_key(web, "EdDSA", django_capture_on_commit_callbacks)
    set_source(web, "both", django_capture_on_commit_callbacks)
    give_site(settings, "EdDSA")
    assert HEX.match(trusted_identity.sign_user_id("acme", "web", 42))
    token = trusted_identity.sign_user_id("acme", "web", 42, form="token")
    assert header_of(token) == {"alg": "EdDSA", "typ": "JWT", "kid": "site-ed"}
    assert_starts_trusted(client, web, "42", token)
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    token = trusted_identity.sign_user_id("acme", "web", "u-9")
    assert_starts_trusted(client, web, "u-9", token)
    with pytest.raises(InvalidRequest, match="form must be plain or token"):
        trusted_identity.sign_user_id("acme", "web", "u-9", form="jwt")
    with pytest.raises(PublicKeysOnly):  # plain needs a secret: there is none
        trusted_identity.sign_user_id("acme", "web", "u-9", form="plain")


def test_the_operators_tools_still_sign_with_the_secret_only(
    settings, web, django_capture_on_commit_callbacks
):
    """The CLI's ``sign`` and ``sign_token_for`` are not the site's producers: nothing
    an operator runs mints a public-key token with the site's key."""
    add_key(web, "ES256", django_capture_on_commit_callbacks)
    give_site(settings)
    set_source(web, "both", django_capture_on_commit_callbacks)
    issued = verification.sign_token_for("acme", "web", "42", actor=access.get_cli_actor())
    assert header_of(issued.token)["alg"] == "HS256"
    set_source(web, "public-key", django_capture_on_commit_callbacks)
    with pytest.raises(PublicKeysOnly):
        verification.sign_for("acme", "web", "42", access.get_cli_actor())
