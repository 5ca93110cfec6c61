"""``{% load trusted_identity %}{% trusted_identity_config "web" %}``: the client's config."""

import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template
from django.test import RequestFactory
from django.utils.html import json_script

from trusted_identity import services, signing

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
    secret = services.reveal_secret(web, services.get_cli_actor())
    assert config["signed"] == signing.sign(secret, str(user.pk))
    snapshot = services.lookup_platform(config["apiKey"])
    assert services.verify_user_id(snapshot, config["userId"], config["signed"])


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
    secret = services.reveal_secret(ios, services.get_cli_actor())
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
    snapshot = services.lookup_platform(web.api_key)
    assert services.verify_user_id(snapshot, "<&>", config["signed"])


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
