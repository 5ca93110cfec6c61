"""The signature tester on a space's Trusted Identity page
(``trusted_identity.admin.signature_tester``): shown and answered only to those who may
reveal, CSRF-protected, audited without the signature, rate-limited.
"""

import html
import re
import time
from datetime import timedelta

import pytest
from django.test import Client

from trusted_identity import formatting
from trusted_identity.models import Role
from trusted_identity.publickeys import parse_public_key
from trusted_identity.services import access, key_sources, platform_secrets, public_keys
from trusted_identity.signing import sign

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from ..keytoken_helpers import key_token, private_keys, public_pem_of
from ..support import wait_out_window_edge
from .helpers import action_url, current_secret, platform_log, settings_url

USER_ID = "user-7"
KEYS = private_keys()


def url_of_tester(space, kind="ios"):
    return action_url(space, "test_signature", kind)


def post_test(client, space, signed, user_id=USER_ID, kind="ios"):
    return client.post(url_of_tester(space, kind), {"user_id": user_id, "signature": signed})


@pytest.fixture
def viewer_client(space):
    viewer = UserFactory(username="vic")
    MembershipFactory(space=space, user=viewer, role=Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def test_the_page_shows_a_form_per_platform_to_those_who_may_reveal(
    owner_client, viewer_client, space, platform
):
    PlatformFactory(space=space, kind="android")
    body = owner_client.get(settings_url(space)).content.decode()
    for kind in ("ios", "android"):
        assert f'id="signature-tester-{kind}"' in body
        assert f'action="{url_of_tester(space, kind)}"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    body = viewer_client.get(settings_url(space)).content.decode()
    assert "signature-tester-" not in body and "test-signature" not in body


def test_a_valid_signature(owner_client, owner, space, platform):
    signed = sign(current_secret(platform), USER_ID)
    response = post_test(owner_client, space, signed)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-verdict="valid-current"' in body
    assert USER_ID.encode().hex() in body
    assert response.context["found"].hashed_length == len(USER_ID)
    assert response["Cache-Control"].startswith("max-age=0")
    entry = platform_log(platform).last()
    assert entry.user == owner
    assert USER_ID in entry.change_message and signed not in entry.change_message


def test_each_verdict_on_the_page(owner_client, space, platform):
    android = PlatformFactory(space=space, kind="android")
    old = current_secret(platform)
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=1))
    older = current_secret(platform)
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(0))  # ends both
    middle = current_secret(platform)
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=1))
    cases = {
        sign(current_secret(platform), USER_ID): "valid-current",
        sign(middle, USER_ID): "valid-previous",
        sign(old, USER_ID): "expired-secret",
        sign(older, USER_ID): "expired-secret",
        sign(current_secret(android), USER_ID): "other-platform",
        "0" * 63: "malformed",
        "0" * 64: "no-match",
    }
    for signed, verdict in cases.items():
        response = post_test(owner_client, space, signed)
        assert response.context["found"].verdict == verdict, signed
        assert f'data-verdict="{verdict}"' in response.content.decode()


def test_the_user_id_is_not_stripped(owner_client, space, platform):
    response = post_test(
        owner_client, space, sign(current_secret(platform), USER_ID), " " + USER_ID
    )
    assert response.context["found"].verdict == "no-match"
    assert response.context["found"].hashed_hex == (" " + USER_ID).encode().hex()


def test_a_viewer_gets_403(viewer_client, space, platform):
    assert viewer_client.get(url_of_tester(space)).status_code == 403
    response = post_test(viewer_client, space, sign(current_secret(platform), USER_ID))
    assert response.status_code == 403
    assert not platform_log(platform).filter(change_message__startswith="Tested").exists()


def test_another_space_is_404(owner_client, space):
    other = PlatformFactory(space=SpaceFactory(slug="other"), kind="ios")
    assert post_test(owner_client, other.space, "0" * 64).status_code == 404
    assert post_test(owner_client, space, "0" * 64, kind="roku").status_code == 404


def test_csrf_is_enforced(owner, space, platform):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert post_test(client, space, "0" * 64).status_code == 403
    page = client.get(url_of_tester(space))
    token = page.cookies["csrftoken"].value
    response = client.post(
        url_of_tester(space),
        {"user_id": USER_ID, "signature": "0" * 64, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 200
    assert response.context["found"].verdict == "no-match"


def test_empty_and_bad_input(owner_client, space, platform):
    response = post_test(owner_client, space, "", user_id="")
    assert response.status_code == 400
    assert response.context["found"] is None
    response = post_test(owner_client, space, "0" * 300)
    assert response.status_code == 400
    assert "too long" in response.context["error"]


def test_rate_limited(owner_client, space, platform, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "TESTER_RATE_LIMIT": "2/m"}
    wait_out_window_edge(60)
    for _ in range(2):
        assert post_test(owner_client, space, "0" * 64).status_code == 200
    response = post_test(owner_client, space, "0" * 64)
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert 'id="tester-error"' in response.content.decode()
    assert platform_log(platform).filter(change_message__startswith="Tested").count() == 2


def test_dates_read_as_everywhere_else_in_the_console(owner_client, space, platform, settings):
    # The console's one wording of moments (``2026-11-26 14:05 UTC``), whatever the
    # site's TIME_ZONE and DATETIME_FORMAT, not Django's "Nov. 26, 2026, 2:05 p.m.".
    settings.TIME_ZONE = "America/New_York"
    old = current_secret(platform)
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=1))
    response = post_test(owner_client, space, sign(old, USER_ID))
    assert response.context["found"].verdict == "valid-previous"
    body = response.content.decode()
    found = response.context["found"]
    grace_end, made = formatting.moment(found.grace_end), formatting.moment(found.secret_created_at)
    assert grace_end.endswith(" UTC") and f">{grace_end}</time>" in body
    assert made.endswith(" UTC") and f">{made}</time>" in body
    assert "a.m." not in body and "p.m." not in body


@pytest.mark.parametrize("kind", ["ios", "android", "androidtv"])
def test_the_title_reads_with_any_kind(owner_client, space, kind):
    # Not "Test a iOS signature" / "Test a Android signature".
    platform = space.platforms.filter(kind=kind).first() or PlatformFactory(space=space, kind=kind)
    response = owner_client.get(url_of_tester(space, platform.kind))
    assert response.context["title"] == f"Test a signature ({platform.get_kind_display()})"
    assert "Test a i" not in response.content.decode()


def test_no_match_shows_the_id_variant_the_signature_was_made_for(owner_client, space, platform):
    given = USER_ID + "\u202e"
    signed = sign(current_secret(platform), given + "\n")
    body = post_test(owner_client, space, signed, user_id=given).content.decode()
    assert 'data-verdict="no-match"' in body
    variant = body[body.index('id="verdict-variant"') :]
    variant = variant[: variant.index("</div>")]
    # The id as it was signed, its bidi and control characters made visible.
    assert "user-7<U+202E><U+000A>" in variant.replace("&lt;", "<").replace("&gt;", ">")
    assert "\u202e" not in variant
    assert "the current secret" in variant
    assert 'id="verdict-variant"' not in post_test(owner_client, space, "0" * 64).content.decode()


# ------------------------------------------------------------ public-key tokens


def pk_token(private, kid, user_id=USER_ID, lifetime=600, **kw):
    now = int(time.time())
    claims = {"sub": user_id, "iat": now - 5, "exp": now + lifetime}
    return key_token(private, alg=kw.pop("alg", "ES256"), kid=kid, claims=claims, **kw)


@pytest.fixture
def keyed(platform):
    cli = access.get_cli_actor()
    public_keys.add_public_key(platform, public_pem_of(KEYS["ES256"]), cli, kid="ec-1")
    key_sources.set_key_source(platform, "both", cli)
    return platform


def test_a_valid_public_key_token_names_its_key(owner_client, space, keyed):
    signed = pk_token(KEYS["ES256"], "ec-1")
    response = post_test(owner_client, space, signed)
    body = response.content.decode()
    words = " ".join(re.sub(r"<[^>]+>", " ", body).split())
    assert 'data-verdict="valid-current"' in body and 'data-tone="ok"' in body
    assert "Verified by public key “ec-1”." in html.unescape(words)
    fingerprint = parse_public_key(public_pem_of(KEYS["ES256"])).fingerprint
    assert f'<code class="ti-fingerprint" id="verdict-fingerprint">{fingerprint}</code>' in body
    assert "Bytes signed" in body and signed.rsplit(".", 1)[0].encode().hex() in body
    assert 'id="verdict-form">public-key' in body
    entry = platform_log(keyed).last()
    assert "valid-current" in entry.change_message and signed not in entry.change_message


@pytest.mark.parametrize(
    ("case", "verdict", "words"),
    [
        ("unknown kid", "no-match", "Names no public key of this platform: no key has the kid"),
        ("expired key", "expired-secret", "Signed with public key “ec-1”, which expired"),
        ("other private key", "no-match", "its signature is not one of public key “ec-1”"),
        ("wrong alg for the key", "malformed", "Not a well-formed public-key token"),
        ("secret only", "valid-current", "Verified by public key “ec-1”."),
    ],
)
def test_public_key_refusals_are_said_precisely(owner_client, space, keyed, case, verdict, words):
    cli = access.get_cli_actor()
    signed = pk_token(KEYS["ES256"], "ec-1")
    if case == "unknown kid":
        signed = pk_token(KEYS["ES256"], "nope")
    elif case == "expired key":
        public_keys.expire_public_key(keyed, "ec-1", cli)
        time.sleep(0.01)
    elif case == "other private key":
        signed = pk_token(private_keys()["ES256"], "ec-1")
    elif case == "wrong alg for the key":
        signed = pk_token(KEYS["EdDSA"], "ec-1", alg="EdDSA")
    elif case == "secret only":
        key_sources.set_key_source(keyed, "secret", cli)
    body = post_test(owner_client, space, signed).content.decode()
    assert f'data-verdict="{verdict}"' in body
    assert words in html.unescape(" ".join(re.sub(r"<[^>]+>", " ", body).split()))
    if case == "secret only":  # the key matches, the key source refuses it
        assert 'data-tone="warn"' in body and "invalid (form_not_allowed)" in body
    else:
        assert 'data-tone="bad"' in body
