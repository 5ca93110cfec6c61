"""The admin console in a real Chromium: Debian's ``chromium`` driven by Playwright.

Every test is a click-through against pytest-django's ``live_server``: log in on
/admin/login/, open a space's Trusted Identity page from the space list, reveal
and copy a secret, rotate with a grace, turn enforcement on and off through the
confirmation page and the override, and check what a viewer can't do.

The browser is ``/usr/bin/chromium`` (no Playwright browser download), launched once
per run by the ``browser`` fixture of ``conftest.py``. Without it the tests skip
locally, but fail when ``CI`` is set, so CI can't pass them silently.
"""

import os

# Playwright's sync API keeps an asyncio loop in this thread, which makes Django
# refuse database access from the test ("SynchronousOnlyOperation"). The test does
# not share connections across threads in an unsafe way: this is Django's
# documented switch for exactly this case, set before any database use.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.utils import timezone

from tests.support import record_outcome, verify_user_id
from trusted_identity import signing
from trusted_identity.models import Platform, Role
from trusted_identity.services import access, lookup, platform_secrets

from .factories import (
    PASSWORD,
    MembershipFactory,
    OutcomeCountFactory,
    PlatformFactory,
    SpaceFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIMEOUT_MS = 15_000
# The ``browser`` fixture (one Chromium for the whole run) is in conftest.py.


def _new_context(browser, live_server, width=1280, **options):
    """A fresh browser context on the live server, ``width`` px wide (the admin's two
    layouts: 1,280 and 390), ready for :func:`log_in`."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": width, "height": 900}, **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.ti_base_url = live_server.url  # for log_in's cookie
    return context


@pytest.fixture
def context(browser, live_server):
    context = _new_context(browser, live_server)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def space(db):
    return SpaceFactory(slug="acme", name="Acme")


@pytest.fixture
def web(space):
    return PlatformFactory(space=space, kind="web")


@pytest.fixture
def owner(space):
    user = UserFactory(username="olivia")
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def viewer(space):
    user = UserFactory(username="victor")
    MembershipFactory(space=space, user=user, role=Role.VIEWER)
    return user


# ------------------------------------------------------------------ helpers


def log_in(page, user):
    """Signed in as ``user`` by the session cookie Django's login sets (``force_login``),
    on no page yet. The login form itself is driven by :func:`log_in_with_the_form`, in
    the test of logging in; here it would cost every test about 0.7 s (the form, its
    post and the admin index, all static files loaded again in each new context)."""
    add_session_cookie(page.context, page.context.ti_base_url, user)


def add_session_cookie(context, url: str, user) -> None:
    """The session cookie Django's login sets for ``user`` (``force_login``), for ``url``."""
    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": url}])


def log_in_with_the_form(page, user):
    """Through /admin/login/ as a person does, to the admin index."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    assert page.locator("#user-tools").is_visible()


def submit(page, selector):
    """Click a control that submits a form and wait for the next document to load.

    The answer may come back at the same URL (a form with errors, a redirect to the
    page that was already open), so waiting for a URL can return on the old document:
    the old one is marked, and the wait ends once a document without the mark is loaded.
    """
    page.evaluate("() => { window.__tiPrevious = true; }")
    page.click(selector)
    page.wait_for_function("() => !window.__tiPrevious && document.readyState === 'complete'")


def settings_path(space):
    return f"/admin/trusted_identity/space/{space.pk}/trusted-identity/"


def open_settings(page, space):
    """From the admin index, through the space list's "Settings" link."""
    page.click("#content-main a[href$='/trusted_identity/space/']")
    page.wait_for_url("**/trusted_identity/space/")
    page.click(f"a.ti-settings-link[href='{settings_path(space)}']")
    page.wait_for_url(f"**{settings_path(space)}")
    assert page.title().startswith(f"Trusted Identity: {space}")


def current_secret(platform):
    """Decrypted from the model, so the check itself writes no audit entry."""
    return platform_secrets.current_secret_row(platform).get_secret()


def platform_log(platform):
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Platform), object_id=str(platform.pk)
    ).order_by("pk")


def success_messages(page):
    return page.locator("ul.messagelist li.success").all_inner_texts()


# -------------------------------------------------------------------- tests


def test_log_in_and_open_the_settings_page(page, space, web, owner):
    PlatformFactory(space=space, kind="ios")
    log_in_with_the_form(page, owner)
    open_settings(page, space)
    assert page.locator("section.ti-platform").evaluate_all(
        "sections => sections.map(s => s.dataset.platform)"
    ) == ["web", "ios"]
    for kind in ("web", "ios"):
        section = page.locator(f"#platform-{kind}")
        assert section.get_attribute("data-platform") == kind
        assert section.locator(f"#reveal-{kind}").inner_text() == "Reveal"
        assert section.locator(f"#rotate-{kind}").inner_text() == "Rotate"
        assert section.locator(f"#enforcement-{kind}").inner_text() == "Turn on enforcement"
        assert section.locator(f"#figures-{kind} td[data-figure='valid']").inner_text() == "0"
    assert "Your role in this space: Owner." in page.locator(".ti-intro").inner_text()
    assert page.locator(".ti-secret.ti-revealed").count() == 0


def test_reveal_shows_the_secret_audits_it_and_a_reload_hides_it(page, space, web, owner):
    log_in(page, owner)
    page.goto(settings_path(space))
    before = platform_log(web).count()
    page.click("#reveal-web")
    secret = page.locator("#secret-web.ti-revealed")
    secret.wait_for()
    shown = secret.inner_text().strip()
    assert shown == current_secret(web)
    assert shown.startswith("tis_web_")
    revealed = platform_log(web).filter(change_message="Revealed the current secret.")
    assert revealed.filter(user=owner).count() == 1
    assert platform_log(web).count() > before
    warning = page.locator("ul.messagelist li.warning").inner_text()
    assert "You revealed the current Web secret" in warning
    # The page replaced its history entry: a reload is a GET, and hides the secret.
    assert page.url.endswith(settings_path(space) + "#secret-label-web")
    page.reload()
    assert page.locator("#secret-web.ti-revealed").count() == 0
    assert page.locator("#reveal-web").is_visible()
    assert shown not in page.content()
    assert revealed.filter(user=owner).count() == 1  # the reload did not reveal again


def test_copy_puts_the_secret_on_the_clipboard(browser, live_server, space, web, owner):
    context = _new_context(browser, live_server)
    try:
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page = context.new_page()
        log_in(page, owner)
        page.goto(settings_path(space))
        page.click("#reveal-web")
        shown = page.locator("#secret-web.ti-revealed").inner_text().strip()
        copy = page.locator("#copy-web")
        assert copy.inner_text() == "Copy"
        copy.click()
        status = page.locator("#copy-status-web")
        status.filter(has_text=re.compile(".+")).wait_for()
        assert status.get_attribute("role") == "status"
        assert copy.get_attribute("data-ti-copy-result") == "copied"
        assert status.inner_text() == "Copied to the clipboard."
        assert page.evaluate("navigator.clipboard.readText()") == shown
    finally:
        context.close()


def test_copy_without_the_clipboard_api_selects_the_secret(page, space, web, owner):
    """The fallback path: no async clipboard (or it refuses), execCommand fails too."""
    page.add_init_script(
        "Object.defineProperty(navigator, 'clipboard', {value: undefined});"
        "document.execCommand = () => false;"
    )
    log_in(page, owner)
    page.goto(settings_path(space))
    page.click("#reveal-web")
    shown = page.locator("#secret-web.ti-revealed").inner_text().strip()
    page.click("#copy-web")
    status = page.locator("#copy-status-web")
    status.filter(has_text=re.compile(".+")).wait_for()
    assert status.inner_text() == "Could not copy: select the secret and copy it by hand."
    assert page.locator("#copy-web").get_attribute("data-ti-copy-result") == "failed"
    assert page.evaluate("window.getSelection().toString().trim()") == shown


def test_rotate_with_a_grace_through_the_confirmation(page, space, web, owner):
    old = current_secret(web)
    log_in(page, owner)
    page.goto(settings_path(space))
    page.select_option("#grace-web", "1h")
    page.click("#rotate-web")
    page.wait_for_url(re.compile(r"/trusted-identity/web/rotate/$"))
    assert page.locator("h1").inner_text() == "Rotate the Web secret?"
    assert page.locator("#id_grace").input_value() == "1h"  # the choice carried over
    assert current_secret(web) == old  # nothing happens before the confirmation
    confirm = page.locator("#confirm-rotate")
    assert confirm.inner_text() == "Yes, rotate"
    confirm.click()
    page.wait_for_url(f"**{settings_path(space)}#platform-web")

    new = current_secret(web)
    assert new != old
    (message,) = success_messages(page)
    assert message.startswith("Rotated the secret of acme/web.")
    assert "The previous secret still verifies until" in message
    body = page.content()
    assert new not in body and old not in body  # rotation never displays a secret
    assert page.locator("#secret-web.ti-revealed").count() == 0
    until = platform_secrets.previous_secret_valid_until(web)
    assert abs(until - (timezone.now() + timedelta(hours=1))) < timedelta(minutes=1)
    assert page.locator("#previous-valid-until-web time").count() == 1

    snapshot = lookup.lookup_platform(web.api_key)
    for secret in (new, old):
        assert verify_user_id(snapshot, "user-42", signing.sign(secret, "user-42"))
    entry = platform_log(web).filter(user=owner).last()
    assert entry.get_change_message() == "Rotated the secret; previous secret grace: 1 hour."


def test_end_the_grace_now_from_the_page(page, space, web, owner):
    old = current_secret(web)
    platform_secrets.rotate_secret(web, access.get_cli_actor(), timedelta(hours=24))
    log_in(page, owner)
    page.goto(settings_path(space))
    assert page.locator("#verifying-secrets-web li").count() == 2
    button = page.locator("#revoke-previous-web")
    red = button.evaluate("e => getComputedStyle(e).backgroundColor")
    plain = page.locator("#rotate-web").evaluate("e => getComputedStyle(e).backgroundColor")
    assert red != plain  # styled as Django's delete button, not as an ordinary one
    button.click()
    page.wait_for_url(re.compile(r"/trusted-identity/web/revoke-previous/$"))
    assert page.locator("h1").inner_text() == "End the grace of the previous Web secrets now?"
    confirm = page.locator("#confirm-revoke-previous")
    assert confirm.evaluate("e => getComputedStyle(e).backgroundColor") == red  # danger
    confirm.click()
    page.wait_for_url(f"**{settings_path(space)}#platform-web")
    (message,) = success_messages(page)
    assert message.startswith("Ended the grace of 1 previous Web secret")
    assert page.locator("#verifying-secrets-web li").count() == 1
    assert page.locator("#revoke-previous-web").count() == 0
    snapshot = lookup.lookup_platform(web.api_key)
    assert not verify_user_id(snapshot, "user-42", signing.sign(old, "user-42"))


def test_toggle_enforcement_through_the_confirmation_and_the_override(page, space, web, owner):
    log_in(page, owner)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    hour = an_hour_ago.replace(minute=0, second=0, microsecond=0)
    OutcomeCountFactory(platform=web, hour=hour, outcome="valid", count=100)  # 100 users
    page.goto(settings_path(space))

    # On, with 100 users' valid starts: a confirmation page, then enforced.
    page.click("#enforcement-web")
    page.wait_for_url(re.compile(r"/trusted-identity/web/enforcement/$"))
    assert page.locator("h1").inner_text() == "Turn on enforcement for Web?"
    assert page.locator("#id_override").count() == 0
    assert not Platform.objects.get(pk=web.pk).enforced
    page.click("#confirm-enforcement")
    page.wait_for_url(f"**{settings_path(space)}#platform-web")
    assert Platform.objects.get(pk=web.pk).enforced
    assert page.locator("#enforcement-state-web").inner_text() == "Enforced"
    assert success_messages(page)[0].startswith("Enforcement is now on for Web")

    # Off again, also confirmed.
    submit(page, "#enforcement-web")
    assert page.locator("h1").inner_text() == "Turn off enforcement for Web?"
    submit(page, "#confirm-enforcement")
    page.wait_for_url(f"**{settings_path(space)}#platform-web")
    assert not Platform.objects.get(pk=web.pk).enforced
    assert page.locator("#enforcement-web").inner_text() == "Turn on enforcement"

    # Below the threshold: the confirmation needs the override box and a reason.
    OutcomeCountFactory(platform=web, hour=hour, outcome="missing", count=10)
    page.reload()
    assert page.locator("#platform-web .ti-readiness").get_attribute("data-ready") == "false"
    submit(page, "#enforcement-web")
    assert "not rolled out far enough: only 90.9%" in page.locator(".ti-readiness").inner_text()
    confirm = page.locator("#confirm-enforcement")
    assert confirm.inner_text() == "Yes, turn on enforcement"
    submit(page, "#confirm-enforcement")  # no override ticked
    assert page.locator(".errorlist").first.is_visible()
    assert not Platform.objects.get(pk=web.pk).enforced
    page.check("#id_override")
    submit(page, "#confirm-enforcement")  # ticked, but no reason
    reason_error = page.locator(".errorlist", has_text="Give the reason for the override.")
    assert reason_error.is_visible()
    assert not Platform.objects.get(pk=web.pk).enforced
    assert page.locator("#id_override").is_checked()
    page.fill("#id_reason", "Launch day: the old app version is retired")
    page.click("#confirm-enforcement")
    page.wait_for_url(f"**{settings_path(space)}#platform-web")
    assert Platform.objects.get(pk=web.pk).enforced
    assert page.locator("#enforcement-web").inner_text() == "Turn off enforcement"

    messages = [e.get_change_message() for e in platform_log(web).filter(user=owner)]
    assert messages[:2] == ["Turned enforcement on.", "Turned enforcement off."]
    assert messages[2].startswith("Turned enforcement on below the readiness threshold")
    assert messages[2].endswith("override reason: Launch day: the old app version is retired")
    # The audit history of the platform shows it, one click away.
    page.click("#platform-web .ti-links a:text('History')")
    assert "override reason: Launch day" in page.locator("#change-history").inner_text()


def test_viewer_sees_figures_but_cannot_reveal(page, space, web, viewer):
    record_outcome(web.pk, "valid", 7, at=timezone.now() - timedelta(hours=2))
    log_in(page, viewer)
    page.goto("/admin/")
    open_settings(page, space)
    assert page.locator("#figures-web td[data-figure='valid']").inner_text() == "7"
    assert page.locator("#chart-web svg").is_visible()
    for control in ("reveal-web", "rotate-web", "enforcement-web", "copy-web"):
        assert page.locator(f"#{control}").count() == 0
    assert page.get_by_role("button", name="Reveal").count() == 0
    assert "Your role in this space: Viewer." in page.locator(".ti-intro").inner_text()

    # A forged Reveal POST, with a valid CSRF token, from the viewer's own session.
    status, body = page.evaluate(
        """async (url) => {
            const token = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/)[1];
            const response = await fetch(url, {
                method: "POST", headers: {"X-CSRFToken": token}, body: new FormData(),
            });
            return [response.status, await response.text()];
        }""",
        f"{settings_path(space)}web/reveal/",
    )
    assert status in (403, 404)
    assert "CSRF" not in body
    assert current_secret(web) not in body
    assert not LogEntry.objects.filter(user=viewer).exists()


def test_reveal_is_reachable_with_tab_and_activates_with_enter(page, space, web, owner):
    log_in(page, owner)
    page.goto(settings_path(space))
    page.locator("#api-key-web").click()  # start from the platform's first fact
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "reveal-web":
            break
    else:
        pytest.fail("Tab never reached the Reveal button")
    assert page.locator("#reveal-web").evaluate("b => b.matches(':focus-visible')")
    page.keyboard.press("Enter")
    page.locator("#secret-web.ti-revealed").wait_for()
    assert page.locator("#secret-web.ti-revealed").inner_text().strip() == current_secret(web)


def test_dark_mode_uses_the_admin_dark_theme(browser, live_server, space, web, owner):
    colors, session = {}, None
    for scheme in ("light", "dark"):
        context = _new_context(browser, live_server, color_scheme=scheme, storage_state=session)
        try:
            page = context.new_page()
            if session is None:
                log_in(page, owner)
                session = context.storage_state()
            page.goto(settings_path(space))
            colors[scheme] = page.evaluate(
                """() => {
                    const style = (selector, property) =>
                        getComputedStyle(document.querySelector(selector))[property];
                    return {
                        body: style("body", "backgroundColor"),
                        text: style("body", "color"),
                        badge: style("#enforcement-state-web", "color"),
                        secret: style("#secret-web", "backgroundColor"),
                    };
                }"""
            )
        finally:
            context.close()
    assert colors["light"]["body"] == "rgb(255, 255, 255)"
    assert colors["dark"]["body"] == "rgb(18, 18, 18)"  # the admin's --body-bg, #121212
    assert colors["dark"]["text"] != colors["light"]["text"]
    assert colors["dark"]["badge"] == colors["dark"]["text"]  # readable on the dark theme
    assert colors["dark"]["secret"] != colors["light"]["secret"]


@pytest.mark.parametrize("width", [1280, 390])
def test_the_space_filter_box_overlaps_no_other_filter(page, space, owner, width):
    """The failure log's space search box stays inside the sidebar, above the next
    filter's heading, and its outcome filter offers only what is logged."""
    PlatformFactory(space=space, kind="ios")
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, owner)
    page.goto("/admin/trusted_identity/failurerecord/")
    sidebar = page.locator("#changelist-filter")
    box = sidebar.locator(".ti-space-filter .select2-container").bounding_box()
    space_filter = sidebar.locator('details[data-filter-title="space"]').bounding_box()
    following = sidebar.locator('details[data-filter-title="space"] + details summary')
    below = following.bounding_box()
    # A clear gap above the next heading, and inside the list's padding on both sides.
    assert box["y"] + box["height"] + 8 <= below["y"], (box, below)
    assert box["x"] >= space_filter["x"] + 8, (box, space_filter)
    assert box["x"] + box["width"] + 8 <= space_filter["x"] + space_filter["width"]
    outcomes = sidebar.locator('details[data-filter-title="outcome"] li a').all_inner_texts()
    assert [o.strip() for o in outcomes] == [
        "All",
        "Invalid signature",
        "Missing signature",
        "Rejected",
    ]


def test_the_space_filter_finds_a_space_by_typing(page, space, owner):
    """The platform list's space filter is the admin's autocomplete: type, pick, filtered."""
    PlatformFactory(space=space, kind="ios")
    others = [SpaceFactory(slug=f"zz{n:02d}", name=f"Zeta {n}") for n in range(30)]
    for other in others:
        PlatformFactory(space=other, kind="web")
        MembershipFactory(space=other, user=owner, role=Role.VIEWER)
    log_in(page, owner)
    page.goto("/admin/trusted_identity/platform/")
    sidebar = page.locator("#changelist-filter")
    assert sidebar.locator("a", has_text="Zeta").count() == 0  # no list of spaces
    sidebar.locator(".select2-selection").click()
    page.locator(".select2-search__field").fill("Zeta 17")
    page.locator(".select2-results__option", has_text="Zeta 17").click()
    page.wait_for_url(re.compile(rf"space={others[17].pk}"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Zeta 17" in rows.first.inner_text()
    assert sidebar.locator("li.selected", has_text="Zeta 17").count() == 1
