"""The console's layout in a real Chromium, on the running Django (the nox matrix runs
it on each supported Django): the app's breadcrumbs look like Django's own, the page
uses 1,280 px without a sideways scroll, the lists show their last column, the
decision figures fit 390 px, and the tester's fields fit what is pasted in them.
"""

import os

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # as in test_browser.py

import pytest

from .test_browser import log_in, settings_path
from .test_browser_settings import _new_context, _page, owner, platforms, space  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: What makes breadcrumbs look like Django's: the bar, its links, its indentation.
CRUMB_STYLE = """() => {
    const bar = document.querySelector('.breadcrumbs');
    const link = bar.querySelector('a');
    const style = getComputedStyle(bar), linkStyle = getComputedStyle(link);
    return {
        background: style.backgroundColor, paddingLeft: style.paddingLeft,
        color: style.color, link: linkStyle.color,
        decoration: linkStyle.textDecorationLine,
        left: Math.round(link.getBoundingClientRect().left),
    };
}"""


@pytest.fixture
def wide(browser, live_server, owner):
    context = _new_context(browser, live_server, width=1280)
    page = _page(context)
    log_in(page, owner)
    yield page
    errors = page.ti_errors
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def narrow(browser, live_server, owner):
    context = _new_context(browser, live_server, width=390, is_mobile=True, has_touch=True)
    page = _page(context)
    log_in(page, owner)
    yield page
    context.close()


def no_sideways_scroll(page, width):
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
    )
    assert max(widths) <= width, widths


def test_the_breadcrumbs_look_like_djangos_own(wide, space, platforms):
    wide.goto("/admin/trusted_identity/space/")
    django_style = wide.evaluate(CRUMB_STYLE)
    for path in (settings_path(space) + "web/test-signature/", settings_path(space)):
        wide.goto(path)
        assert wide.evaluate(CRUMB_STYLE) == django_style, path
    # The object tools sit where the running Django puts them on its own change list
    # (beside the title on 5.2 and 6.1, under it on 6.0), at the right.
    ours = _object_tools_place(wide)
    wide.goto("/admin/trusted_identity/platform/")  # Django's own: "Add platform"
    assert ours == _object_tools_place(wide)


def _object_tools_place(page) -> tuple[bool, bool]:
    """(on the title's line, at the right) for the page's object tools."""
    tools = page.locator("ul.object-tools").bounding_box()
    title = page.locator("#content h1").bounding_box()
    return tools["y"] < title["y"] + title["height"], tools["x"] + tools["width"] > 1100


def test_the_page_uses_1280_px_without_breaking_values(wide, space, platforms):
    wide.goto(settings_path(space))
    no_sideways_scroll(wide, 1280)
    # The facts and the figures side by side, the facts' values wide.
    facts = wide.locator("#platform-ios .ti-facts").bounding_box()
    rollout = wide.locator("#platform-ios .ti-rollout").bounding_box()
    assert rollout["x"] > facts["x"] + facts["width"] - 1
    assert abs(rollout["y"] - facts["y"]) < 5
    value = wide.locator("#platform-ios .ti-fact dd").first.bounding_box()
    assert value["width"] > 300  # not a ~250 px column
    # An API key and a date each on one line.
    for selector in ("#api-key-ios", "#last-rotated-ios time"):
        box = wide.locator(selector).evaluate("e => e.getClientRects().length")
        assert box == 1, selector


@pytest.mark.parametrize("model", ["space", "platform"])
def test_the_lists_show_their_last_column_at_1280_px(wide, space, platforms, model):
    wide.goto(f"/admin/trusted_identity/{model}/")
    no_sideways_scroll(wide, 1280)
    last = wide.locator("#result_list thead th").last.bounding_box()
    assert last["x"] + last["width"] <= 1280


def test_the_decision_figures_fit_390_px(narrow, space, platforms):
    narrow.goto(settings_path(space))
    no_sideways_scroll(narrow, 390)
    row = "#summary tr[data-summary-platform='ios']"
    for figure in ("state", "valid_share", "start_share", "readiness"):
        box = narrow.locator(f"{row} [data-summary='{figure}']").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, figure
        if figure != "state":  # each figure labelled on its card, from its column's header
            label = narrow.locator(f"{row} [data-summary='{figure}']").get_attribute("data-label")
            assert label, figure
    user_id = narrow.locator("#failures-ios tbody .ti-user-id").first.bounding_box()
    assert user_id["width"] >= 90  # readable, not one character wide


@pytest.mark.parametrize("width", [390, 1280])
def test_the_tester_fits_a_signature(browser, live_server, owner, space, platforms, width):
    context = _new_context(browser, live_server, width=width)
    try:
        page = _page(context)
        log_in(page, owner)
        page.goto(settings_path(space) + "ios/test-signature/")
        no_sideways_scroll(page, width)
        field = page.locator("textarea[name=signature]")
        needed = field.evaluate(
            """f => { const probe = document.createElement('span');
                probe.style.font = getComputedStyle(f).font; probe.textContent = 'f'.repeat(64);
                document.body.appendChild(probe); const w = probe.getBoundingClientRect().width;
                probe.remove(); return w; }"""
        )
        if width >= 1280:
            assert field.evaluate("f => f.clientWidth") >= needed
        else:
            assert field.bounding_box()["x"] + field.bounding_box()["width"] <= width
        button = page.locator("#test-signature").bounding_box()
        assert button["height"] >= 30 and button["width"] >= 50  # a normal-sized button
        page.fill("input[name=user_id]", "u1")
        page.fill("textarea[name=signature]", "f" * 64)
        page.click("#test-signature")
        banner = page.locator("#verdict-banner")
        assert banner.get_attribute("data-tone") == "bad"
        assert banner.locator("img").evaluate(
            """i => i.complete ? i.naturalWidth > 0
                : new Promise(done => { i.onload = () => done(i.naturalWidth > 0);
                                        i.onerror = () => done(false); })"""
        )
        assert page.ti_errors == []
    finally:
        context.close()


def test_the_figures_beside_the_facts_show_every_column(wide, space, platforms):
    wide.goto(settings_path(space))
    rollout = wide.locator("#platform-ios .ti-rollout").bounding_box()
    for header in wide.locator("#platform-ios .ti-rollout thead th").all():
        box = header.bounding_box()
        assert box["x"] + box["width"] <= rollout["x"] + rollout["width"] + 1, header.inner_text()
