"""``{% load trusted_identity %}{% trusted_identity_config "web" %}``: the client's config."""

import json
import re
import time
from datetime import datetime, timezone

import jwt
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import RequestFactory
from django.utils.html import json_script

from tests.support import verify_user_id
from trusted_identity import runtime, signing
from trusted_identity.services import (
    access,
    lookup,
    platform_secrets,
    signature_forms,
    verification,
)

from .factories import PlatformFactory, SpaceFactory, UserFactory

ELEMENT = re.compile(
    r'^<script type="application/json" id="(?P<id>[^"]+)">(?P<json>.*)</script>$', re.S
)


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


@pytest.fixture
def signing_space(settings, space):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "SIGNING_SPACE": space.slug}


def render(source, user=None, with_request=True):
    request = RequestFactory().get("/page/")
    request.user = user or AnonymousUser()
    context = {"request": request} if with_request else {}
    return Template("{% load trusted_identity %}" + source).render(Context(context))


def parse(html):
    match = ELEMENT.match(html)
    assert match, html
    return match["id"], match["json"], json.loads(match["json"])


def test_a_visitor_gets_the_platform_and_nothing_of_a_user(web, signing_space):
    element_id, _, config = parse(render('{% trusted_identity_config "web" %}'))
    assert element_id == "trusted-identity-web"
    assert config == {
        "apiKey": web.api_key,
        "endpoint": "/trusted-identity/v1/sessions",
        "signEndpoint": "/trusted-identity/sign/?platform=web&space=acme",
        "platform": "web",
        "space": "acme",
    }


def test_a_logged_in_user_gets_the_user_id_and_a_valid_signature(web, signing_space):
    user = UserFactory(username="ann")
    _, _, config = parse(render('{% trusted_identity_config "web" %}', user))
    assert config["userId"] == str(user.pk)
    secret = platform_secrets.reveal_secret(web, access.get_cli_actor())
    assert config["signed"] == signing.sign(secret, str(user.pk))
    snapshot = lookup.lookup_platform(config["apiKey"])
    assert verify_user_id(snapshot, config["userId"], config["signed"])


def test_the_kind_defaults_to_web(web, signing_space):
    element_id, _, config = parse(render("{% trusted_identity_config %}"))
    assert element_id == "trusted-identity-web" and config["apiKey"] == web.api_key


def test_another_space_and_kind(web, signing_space):
    other = SpaceFactory(slug="other")
    ios = PlatformFactory(space=other, kind="ios")
    user = UserFactory(username="ann")
    element_id, _, config = parse(render('{% trusted_identity_config "ios" space="other" %}', user))
    assert element_id == "trusted-identity-ios"
    assert config["apiKey"] == ios.api_key
    assert config["signEndpoint"] == "/trusted-identity/sign/?platform=ios&space=other"
    secret = platform_secrets.reveal_secret(ios, access.get_cli_actor())
    assert config["signed"] == signing.sign(secret, str(user.pk))


def test_without_a_request_in_the_context_it_is_a_visitor_page(web, signing_space):
    _, _, config = parse(render('{% trusted_identity_config "web" %}', with_request=False))
    assert "userId" not in config and "signed" not in config


def test_the_user_id_attribute_setting_is_followed(web, signing_space, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "USER_ID_ATTRIBUTE": "username"}
    _, _, config = parse(render("{% trusted_identity_config %}", UserFactory(username="ann")))
    assert config["userId"] == "ann"


@pytest.mark.parametrize(
    "hostile",
    [
        "</script><script>alert(1)</script>",
        "</SCRIPT >",
        "<!--<script>",
        "a & b &amp; c",
        "line\u2028separator\u2029paragraph",
        "quote\" and 'single' and \\ backslash",
        "ünïcødé 🎉",
    ],
)
def test_escaping_is_as_json_script(web, signing_space, settings, hostile):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "USER_ID_ATTRIBUTE": "username"}
    user = UserFactory(username=hostile)
    html = render("{% trusted_identity_config %}", user)
    _, body, config = parse(html)
    assert config["userId"] == hostile  # what the page's JSON.parse gets back
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in body
    assert html.count("</script") == 1 and html.lower().count("</script") == 1
    # Exactly what Django's json_script gives for the same value.
    django_body = re.sub(r"^<script[^>]*>|</script>$", "", json_script(config, "x"))
    assert body == django_body


def test_an_escaped_signature_still_verifies(web, signing_space, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "USER_ID_ATTRIBUTE": "username"}
    _, _, config = parse(render("{% trusted_identity_config %}", UserFactory(username="<&>")))
    snapshot = lookup.lookup_platform(web.api_key)
    assert verify_user_id(snapshot, "<&>", config["signed"])


def test_no_space_is_a_clear_configuration_error(web):
    with pytest.raises(ImproperlyConfigured, match="SIGNING_SPACE"):
        render("{% trusted_identity_config %}")


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ('{% trusted_identity_config "roku" %}', "no roku platform"),
        ('{% trusted_identity_config "psx" %}', "unknown platform kind"),
        ('{% trusted_identity_config "web" space="nope" %}', "nope"),
    ],
)
def test_an_unknown_platform_or_space_is_a_clear_configuration_error(
    web, signing_space, source, match
):
    with pytest.raises(ImproperlyConfigured, match=match):
        render(source)


def test_a_warm_render_for_a_user_costs_one_query(web, signing_space, django_assert_num_queries):
    user = UserFactory(username="ann")
    render("{% trusted_identity_config %}", user)
    with django_assert_num_queries(1):  # the platform by space and kind; the keys are cached
        render("{% trusted_identity_config %}", user)


# ------------------------------------------------------------ the token form


def set_form(platform, form, **kwargs):
    signature_forms.set_signature_form(
        platform, form, access.get_cli_actor(), force=True, reason="test", **kwargs
    )
    runtime.current().reset()  # as the commit's callback would


def test_form_token_gives_a_token_that_verifies_and_when_it_ends(web, signing_space):
    set_form(web, "either", max_age=signature_forms.parse_max_age("30m"))
    user = UserFactory(username="ann")
    before = int(time.time())
    _, _, config = parse(render('{% trusted_identity_config "web" form="token" %}', user))
    after = int(time.time())
    assert config["form"] == "token"
    assert config["signEndpoint"] == "/trusted-identity/sign/?platform=web&space=acme&form=token"
    assert config["userId"] == str(user.pk)
    secret = platform_secrets.reveal_secret(web, access.get_cli_actor())
    claims = jwt.decode(config["signed"], secret, algorithms=["HS256"])
    assert claims["sub"] == str(user.pk)
    assert before <= claims["iat"] <= after
    assert claims["exp"] - claims["iat"] == 1800  # TOKEN_TTL (1 hour) capped at the max age
    expires = datetime.strptime(config["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc
    )
    assert expires.timestamp() == claims["exp"]
    snapshot = lookup.lookup_platform(web.api_key)
    verified = verification.verify_signed(snapshot, config["userId"], config["signed"])
    assert verified.valid and verified.form == "token"


def test_form_token_for_a_visitor_names_the_form_and_nothing_of_a_user(web, signing_space):
    set_form(web, "token")
    _, _, config = parse(render('{% trusted_identity_config "web" form="token" %}'))
    assert config == {
        "apiKey": web.api_key,
        "endpoint": "/trusted-identity/v1/sessions",
        "signEndpoint": "/trusted-identity/sign/?platform=web&space=acme&form=token",
        "platform": "web",
        "space": "acme",
        "form": "token",
    }


def test_without_a_form_a_token_only_platform_gets_a_token_and_the_page_still_renders(
    web, signing_space
):
    set_form(web, "token")
    config = parse(render("{% trusted_identity_config %}", UserFactory(username="ann")))[2]
    assert config["form"] == "token" and config["signed"].count(".") == 2
    assert "expiresAt" in config and "form=token" in config["signEndpoint"]
    visitor = parse(render("{% trusted_identity_config %}", None))[2]
    assert visitor["form"] == "token" and "signed" not in visitor


def test_form_plain_is_the_default_spelt_out(web, signing_space):
    user = UserFactory(username="ann")
    default = parse(render("{% trusted_identity_config %}", user))[2]
    explicit = parse(render('{% trusted_identity_config form="plain" %}', user))[2]
    assert default == explicit and "form" not in default and "expiresAt" not in default


@pytest.mark.parametrize("user", [False, True], ids=["visitor", "user"])
@pytest.mark.parametrize(
    ("policy", "source", "words"),
    [
        ("plain", '{% trusted_identity_config form="token" %}', "accepts only plain signatures"),
        ("token", '{% trusted_identity_config form="plain" %}', "accepts only token signatures"),
        ("either", '{% trusted_identity_config form="jwt" %}', "form must be plain or token"),
    ],
)
def test_a_form_the_platform_refuses_is_the_sign_views_error(
    web, signing_space, client, policy, source, words, user
):
    if policy != "plain":
        set_form(web, policy)
    person = UserFactory(username="ann") if user else None
    with pytest.raises(ImproperlyConfigured) as refused:
        render(source, person)
    message = str(refused.value)
    assert message.startswith("{% trusted_identity_config %}: acme/web: ") and words in message
    # The sign view says the same words for the same form.
    client.force_login(person or UserFactory(username="bob"))
    form = re.search(r'form="(\w+)"', source)
    query = {"platform": "web", "space": "acme", **({"form": form[1]} if form else {})}
    answer = client.get("/trusted-identity/sign/", query).json()
    assert message.endswith(answer["error"]["message"])


def test_a_warm_token_render_for_a_user_costs_one_query(
    web, signing_space, django_assert_num_queries
):
    set_form(web, "either")
    user = UserFactory(username="ann")
    render('{% trusted_identity_config form="token" %}', user)
    with django_assert_num_queries(1):
        render('{% trusted_identity_config form="token" %}', user)
