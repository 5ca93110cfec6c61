"""The Trusted Identity page's rollout parts in a real Chromium (see test_browser.py for
the browser and the live server): the summary, versions and the forecast, reasons,
secret use, the failure log; the page at 390 px wide; the space list's link at 1,280
px; Reveal landing on the secret; the chart's colours on the dark theme.
"""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # as in test_browser.py

from datetime import timedelta

import pytest
from django.utils import timezone

from trusted_identity import outcomes
from trusted_identity.models import FailureRecord, Role
from trusted_identity.services import access, counting, platform_secrets

from .factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from .test_browser import _new_context, log_in, settings_path

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KINDS = ("web", "ios", "android", "tvos", "androidtv", "roku")


def _page(context):
    page = context.new_page()
    page.ti_errors = []
    page.on("pageerror", lambda exc: page.ti_errors.append(str(exc)))
    return page


@pytest.fixture
def space(db):
    return SpaceFactory(slug="acme", name="Acme Mobile Applications For Everyone")


@pytest.fixture
def platforms(space):
    """Every kind, with versions, reasons, failures and a rotated iOS secret still in use."""
    made = {kind: PlatformFactory(space=space, kind=kind) for kind in KINDS}
    cli = access.get_cli_actor()
    ios = made["ios"]
    previous = platform_secrets.current_secret_row(ios).pk
    platform_secrets.rotate_secret(ios, cli, timedelta(hours=24))
    for i in range(6):
        counting.record_start(
            ios.pk,
            "valid",
            f"u{i}",
            form="plain",
            secret_id=previous,
            client=counting.ClientVersions("3.2.0", "ios/2.1.0"),
        )
    for i in range(4):
        counting.record_start(
            ios.pk,
            "invalid",
            f"bad{i}",
            form="plain",
            reason="other_platform",
            client=counting.ClientVersions("3.1.0-very-long-version-name-x", "ios/2.0.0"),
        )
    outcomes.flush()
    now = timezone.now()
    for i in range(25):
        FailureRecord.objects.create(
            platform=ios,
            at=now - timedelta(minutes=i),
            outcome="invalid",
            reason="other_platform",
            user_id=f"a-rather-long-user-identifier-{i:04d}" * 2,
            app_version="3.1.0-very-long-version-name-x",
            sdk_version="ios/2.0.0",
        )
    return made


@pytest.fixture
def owner(space):
    user = UserFactory(username="olivia")
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def page(browser, live_server, owner):
    context = _new_context(browser, live_server)
    page = _page(context)
    log_in(page, owner)
    yield page
    errors = page.ti_errors
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def in_viewport(page, selector):
    return page.evaluate(
        """(selector) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return box.top >= 0 && box.left >= 0 && box.bottom <= window.innerHeight
                && box.right <= window.innerWidth;
        }""",
        selector,
    )


def test_summary_versions_reasons_secret_use_and_failures(page, space, platforms):
    page.goto(settings_path(space))
    summary = page.locator("#summary")
    assert summary.is_visible()
    rows = summary.locator("tbody tr")
    assert rows.count() == len(KINDS)
    ios_row = summary.locator("tr[data-summary-platform='ios']")
    assert ios_row.locator("[data-summary='state']").inner_text() == "Not enforced"
    assert ios_row.locator("[data-summary='start_share']").inner_text() == "60.0% (6 of 10 starts)"
    assert ios_row.locator("[data-summary='readiness']").inner_text() == "Too few users to tell"
    ios_row.locator("a").click()
    page.wait_for_url("**#platform-ios")
    users_line = page.locator("#users-line-ios").inner_text()
    assert users_line.startswith("Valid identified users since ")
    assert users_line.endswith(": 60.0% (6 of 10 users)")
    versions = page.locator("#versions-ios tbody tr")
    assert versions.first.locator("th").inner_text() == "3.2.0"
    assert versions.first.locator("td").all_inner_texts() == ["6", "100.0%"]
    assert page.locator("#forecast-ios").inner_text().startswith("Too early to forecast a day")
    reasons = page.locator("#reasons-ios [data-reason]")
    assert reasons.evaluate_all("rs => rs.map(r => r.dataset.reason)") == ["other_platform"]
    assert "another platform of this space" in reasons.first.inner_text()
    previous = page.locator("#verifying-secrets-ios li[data-secret='previous']")
    assert "by 6 users: ending the grace now turns their session starts invalid" in (
        previous.inner_text()
    )
    assert page.locator("#failures-ios tbody tr").count() == 20
    assert page.locator("#failures-ios").is_visible()
    assert page.locator("#tester-ios").count() == 1


def test_the_page_fits_390_px_without_sideways_scrolling(
    browser, live_server, space, platforms, owner
):
    context = _new_context(browser, live_server, width=390, is_mobile=True, has_touch=True)
    try:
        page = _page(context)
        log_in(page, owner)
        for step in ("page", "revealed"):
            if step == "page":
                page.goto(settings_path(space))
            else:
                page.click("#reveal-ios")
                page.locator("#secret-ios.ti-revealed").wait_for()
            widths = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
            )
            wide = page.evaluate(
                """() => [...document.querySelectorAll('body *')]
                    .filter(e => e.getBoundingClientRect().right > 391 && !e.closest('.ti-scroll'))
                    .slice(0, 30).map(e => e.tagName + '#' + e.id + '.' + e.className
                        + ' ' + Math.round(e.getBoundingClientRect().right))"""
            )
            assert max(widths) <= 390, (step, widths, wide)
        # The failure log is one card per failure: nothing to scroll, the user id wide.
        box = page.locator("#failures-ios .ti-scroll")
        assert box.evaluate("el => el.scrollWidth <= el.clientWidth")
        user_id = page.locator("#failures-ios tbody .ti-user-id").first
        assert user_id.bounding_box()["width"] >= 200
        assert user_id.get_attribute("data-label") == "User id"
        assert page.ti_errors == []
    finally:
        context.close()


def test_the_space_list_shows_the_page_link_at_1280_px(page, space, platforms):
    page.goto("/admin/")
    page.click("#content-main a[href$='/trusted_identity/space/']")
    page.wait_for_url("**/trusted_identity/space/")
    link = f"a.ti-settings-link[href='{settings_path(space)}']"
    assert page.locator(link).is_visible()
    assert in_viewport(page, link)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
    page.click(link)
    page.wait_for_url(f"**{settings_path(space)}")


def test_the_app_index_links_each_space_page(page, space, platforms):
    page.goto("/admin/trusted_identity/")
    page.click(f"#trusted-identity-pages a[href='{settings_path(space)}']")
    page.wait_for_url(f"**{settings_path(space)}")


def test_reveal_scrolls_to_the_revealed_secret(page, space, platforms):
    page.goto(settings_path(space))
    page.locator("#reveal-roku").scroll_into_view_if_needed()  # the last platform
    page.click("#reveal-roku")
    page.locator("#secret-roku.ti-revealed").wait_for()
    page.wait_for_function("() => window.scrollY > 0")
    assert in_viewport(page, "#secret-roku")
    assert page.url.endswith("#secret-label-roku")


def _luminance(rgb):
    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a, b):
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _rgb(css):
    return tuple(int(float(n)) for n in css[css.index("(") + 1 : css.index(")")].split(",")[:3])


def test_the_chart_reads_on_the_dark_theme(browser, live_server, space, platforms, owner):
    context = _new_context(browser, live_server, color_scheme="dark")
    try:
        page = _page(context)
        log_in(page, owner)
        page.goto(settings_path(space))
        colours = page.evaluate(
            """() => {
                const style = (selector, property) =>
                    getComputedStyle(document.querySelector(selector))[property];
                return {
                    body: style("body", "backgroundColor"),
                    slot: style("#chart-ios .ti-bar-slot", "fill"),
                    valid: style("#chart-ios .ti-bar-valid", "fill"),
                    bad: style("#chart-ios .ti-bar-bad", "fill"),
                    label: style("#chart-ios .ti-chart-label", "fill"),
                    reason: style("#reasons-ios dd", "color"),
                };
            }"""
        )
        assert colours["body"] == "rgb(18, 18, 18)"  # the admin's dark --body-bg
        for part in ("valid", "bad"):
            assert _contrast(_rgb(colours[part]), _rgb(colours["slot"])) >= 3, colours
        for part in ("label", "reason"):
            assert _contrast(_rgb(colours[part]), _rgb(colours["body"])) >= 4.5, colours
    finally:
        context.close()
