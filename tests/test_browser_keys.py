"""The console's public keys in a real Chromium (see test_browser.py), at 1,280 and
390 px: the key source and the keys fit without a sideways scroll, a fingerprint
breaks rather than widening the page; a private key pasted by mistake is refused and
the field comes back empty; a 5 MB paste is cut by the field and refused; a key added,
removed through its confirmation page; the move to public keys only through the
override, after which the page says why there is no secret.
"""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # as in test_browser.py

import pytest
from cryptography.hazmat.primitives import serialization

from trusted_identity.models import PlatformSecret, PublicKey
from trusted_identity.services import access, counting, public_keys

from .factories import PlatformFactory
from .keytoken_helpers import private_keys, public_pem_of
from .test_browser import log_in, settings_path, submit
from .test_browser_settings import _new_context, _page, owner, space  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEYS = private_keys()


@pytest.fixture
def keyed(space):
    ios = PlatformFactory(space=space, kind="ios")
    PlatformFactory(space=space, kind="web")
    cli = access.get_cli_actor()
    ec = public_keys.add_public_key(
        ios, public_pem_of(KEYS["ES256"]), cli, kid="a-rather-long-key-id-for-the-2026-signer"
    )
    public_keys.add_public_key(ios, public_pem_of(KEYS["RS256"]), cli, kid="rsa-1")
    counting.record_start(ios.pk, "valid", "u1", form="public-key", key_id=ec.pk)
    return ios


def open_page(browser, live_server, owner, width):
    options = {"is_mobile": True, "has_touch": True} if width < 768 else {}
    context = _new_context(browser, live_server, width=width, **options)
    page = _page(context)
    log_in(page, owner)
    return context, page


def within(page, selector, width):
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (selector, box)
    return box


@pytest.mark.parametrize("width", [390, 1280])
def test_the_keys_fit_the_page(browser, live_server, owner, space, keyed, width):
    context, page = open_page(browser, live_server, owner, width)
    try:
        page.goto(settings_path(space))
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
        )
        assert max(widths) <= width, widths
        for selector in (
            "#public-keys-ios .ti-key",
            "#public-keys-ios .ti-fingerprint",
            "#public-keys-ios .ti-kid",
            "#key-source-ios",
            "#key-source-button-ios",
        ):
            within(page, selector, width)
        # The fingerprint stays inside its card, however narrow.
        card = page.locator("#public-keys-ios .ti-key").first.bounding_box()
        fingerprint = page.locator("#public-keys-ios .ti-fingerprint").first.bounding_box()
        assert fingerprint["x"] + fingerprint["width"] <= card["x"] + card["width"] + 0.5
        buttons = page.locator("#public-keys-ios .ti-key-actions .button").all()
        assert len(buttons) == 4  # Expire and Remove for each key
        for button in buttons:
            box = button.bounding_box()
            assert box["height"] >= 20 and box["x"] + box["width"] <= width
        page.click("#add-key-ios summary")
        field = within(page, "#key-ios", width)
        needed = page.locator("#key-ios").evaluate(
            """f => { const probe = document.createElement('span');
                probe.style.font = getComputedStyle(f).font; probe.textContent = 'A'.repeat(64);
                document.body.appendChild(probe); const w = probe.getBoundingClientRect().width;
                probe.remove(); return w; }"""
        )
        if width >= 1280:  # a PEM's 64-character lines fit
            assert field["width"] >= needed
        within(page, "#kid-ios", width)
        within(page, "#add-key-button-ios", width)
        assert page.ti_errors == []
    finally:
        context.close()


def test_a_private_key_and_a_huge_paste_are_refused_and_not_kept(
    browser,
    live_server,
    owner,
    space,
    keyed,
):
    context, page = open_page(browser, live_server, owner, 1280)
    try:
        page.goto(settings_path(space))
        private = (
            KEYS["EdDSA"]
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        )
        page.click("#add-key-ios summary")
        page.fill("#key-ios", private)
        page.fill("#kid-ios", "oops")
        submit(page, "#add-key-button-ios")
        errors = page.locator("#key-errors-ios")
        assert "This is a private key: it was not stored" in errors.inner_text()
        assert page.locator("#key-ios").input_value() == ""  # never sent back
        assert page.locator("#kid-ios").input_value() == "oops"
        assert private.splitlines()[1] not in page.content()
        # A 5 MB paste: the field keeps 16,384 characters of it, the server says why not.
        page.locator("#key-ios").focus()
        page.keyboard.insert_text("A" * 5_000_000)
        assert len(page.locator("#key-ios").input_value()) == 16_384
        submit(page, "#add-key-button-ios")
        assert page.locator("#key-errors-ios").is_visible()
        assert page.locator("#key-ios").input_value() == ""
        assert PublicKey.objects.filter(platform=keyed).count() == 2
        assert page.ti_errors == []
    finally:
        context.close()


def test_add_remove_and_move_to_public_keys_only(
    browser,
    live_server,
    owner,
    space,
    keyed,
):
    context, page = open_page(browser, live_server, owner, 1280)
    try:
        page.goto(settings_path(space))
        page.click("#add-key-ios summary")
        page.fill("#key-ios", public_pem_of(KEYS["EdDSA"]))
        page.fill("#kid-ios", "ed-1")
        page.fill("#expires-ios", "90d")
        submit(page, "#add-key-button-ios")
        assert "Added public key 'ed-1'" in page.locator("#messages-ios").inner_text()
        assert page.locator("#public-keys-ios [data-kid='ed-1']").is_visible()
        assert page.locator("#keys-full-ios").is_visible()  # three keys verify: no form
        # Remove one, through its confirmation page.
        submit(page, "[aria-label='Remove public key rsa-1']")
        assert "unknown_key" in page.locator("#key-consequence").inner_text()
        submit(page, "#confirm-remove-key")
        assert page.locator("#public-keys-ios [data-kid='rsa-1']").count() == 0
        # Public keys only, below the readiness rule: the override and its reason.
        page.select_option("#key-source-ios", "public-key")
        submit(page, "#key-source-button-ios")
        assert page.locator("#secrets-deletion").is_visible()
        page.check("input[name=override]")
        page.fill("textarea[name=reason]", "every client signs with its key since v5")
        submit(page, "#confirm-key-source")
        assert page.locator("#no-secret-ios").is_visible()
        assert "Its secrets were deleted on" in page.locator("#secrets-deleted-ios").inner_text()
        assert page.locator("#reveal-ios").count() == 0 and page.locator("#rotate-ios").count() == 0
        assert not PlatformSecret.objects.filter(platform=keyed).exists()
        assert page.ti_errors == []
    finally:
        context.close()
