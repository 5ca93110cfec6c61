"""The settings page once enforcing, and one truth per figure (issue 20): an enforced
platform leads with what it rejects now (quiet / rejecting) and shows no readiness box;
the summary, the platform's figures, the versions table and ``status`` print the same
shares for the same questions, each saying users or starts and since when."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from trusted_identity import outcomes
from trusted_identity.formatting import moment, percent
from trusted_identity.services import counting
from trusted_identity.services.counting import ClientVersions
from trusted_identity.services.figures import figures_for, window_start

from ..factories import PlatformFactory
from .helpers import settings_url


def record(platform, outcome, user, *, reason=None, app="none", at=None):
    counting.record_start(
        platform.pk,
        outcome,
        user,
        form="plain" if outcome == "valid" else None,
        reason=reason,
        client=ClientVersions(app),
        at=at,
    )


def section(body, kind):
    start = body.index(f'data-platform="{kind}"')
    end = body.find('<section class="module ti-platform"', start + 1)
    return body[start : end if end > 0 else len(body)]


def text(fragment):
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_an_enforced_platform_that_rejects_nothing_says_quiet(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web", enforced=True)
    record(web, "valid", "someone")
    outcomes.flush()
    body = owner_client.get(settings_url(space)).content.decode()
    web_section = section(body, "web")
    assert 'id="now-web"' in web_section and 'data-now="quiet"' in web_section
    assert web_section.index('id="now-web"') < web_section.index('class="ti-facts"')  # first
    assert "Quiet: no start rejected in the last hour (since " in web_section
    assert 'id="readiness-web"' not in web_section  # no "may I turn it on?" once on
    ios = section(body, "ios")
    assert 'id="now-ios"' not in ios and 'id="readiness-ios"' in ios  # not enforcing


def test_an_enforced_platform_that_rejects_says_how_many_why_and_where_to_look(owner_client, space):
    web = PlatformFactory(space=space, kind="web", enforced=True)
    now = timezone.now()
    for n in range(6):
        record(web, "rejected", f"old-{n % 4}", reason="expired_secret", app="2.9.0")
    for n in range(3):
        record(web, "rejected", f"bare-{n}", reason="missing")
    record(web, "rejected", "yesterday", reason="no_match", at=now - timedelta(hours=20))
    outcomes.flush()
    body = owner_client.get(settings_url(space)).content.decode()
    panel = section(body, "web")
    panel = panel[panel.index('id="now-web"') : panel.index('class="ti-platform-body"')]
    assert 'data-now="rejecting"' in panel
    headline = panel[panel.index('id="now-headline-web"') :]
    headline = text(headline[headline.index(">") + 1 :].split("<a ")[0])
    assert headline.startswith("⚠ Rejecting: 9 starts from 7 users in the last hour (since "), (
        headline
    )
    assert ", 6 of them expired_secret: look at the failures below." in headline
    hour = panel[panel.index('data-window="hour"') : panel.index('data-window="day"')]
    day = panel[panel.index('data-window="day"') :]
    assert 'data-now-figure="starts">9<' in hour and 'data-now-figure="users">7<' in hour
    assert 'data-now-figure="starts">10<' in day and 'data-now-figure="users">8<' in day
    assert re.findall(r'data-reason="(\w+)"', hour) == ["expired_secret", "missing"]
    assert "no_match" in day
    assert "failure log kept (a sample)" in hour and 'data-version="2.9.0"' in hour
    link = re.search(r'<a href="([^"]+)" id="now-failures-web"', panel).group(1)
    assert html.unescape(link).endswith(f"?space={space.pk}&platform__kind=web&outcome=rejected")
    assert owner_client.get(html.unescape(link)).status_code == 200
    summary = body[body.index('id="summary"') : body.index("</section>")]
    assert 'data-now="rejecting"' in summary and "Rejecting: 9 starts in the last hour" in summary


def test_one_truth_per_figure_on_the_page_and_in_status(owner_client, space, platform):
    now = timezone.now()
    early = window_start() + timedelta(hours=1)  # in the window, to the day
    for n in range(40):
        record(platform, "valid", f"user-{n}", app="3.2.0")
        record(platform, "valid", f"user-{n}", app="3.2.0", at=early)  # same users again
    for n in range(7):
        record(platform, "missing", f"late-{n}", reason="missing", app="2.9.0")
    record(
        platform, "invalid", "user-1", reason="no_match", app="3.2.0", at=now - timedelta(days=2)
    )
    record(platform, "visitor", None)
    outcomes.flush()
    figures = figures_for([platform.pk])[platform.pk]
    users_share, starts_share = percent(figures.valid_share), percent(figures.start_share)
    assert (users_share, starts_share) == ("85.1%", "90.9%")  # 40 of 47 users, 80 of 88 starts
    since = moment(window_start())

    body = owner_client.get(settings_url(space)).content.decode()
    summary = body[body.index('id="summary"') : body.index("</section>")]
    row = summary[summary.index('data-summary-platform="ios"') :]
    assert text(re.search(r'data-summary="valid_share"[^>]*>(.*?)</td>', row).group(1)) == (
        f"{users_share} (40 of 47 users)"
    )
    assert text(re.search(r'data-summary="start_share"[^>]*>(.*?)</td>', row).group(1)) == (
        f"{starts_share} (80 of 88 starts)"
    )
    assert f"since {since}" in text(summary)
    ios = section(body, "ios")
    assert f'<td data-figure="start_share">{starts_share}</td>' in ios
    assert f"Valid identified users since {since}: {users_share} (40 of 47 users)" in text(ios)
    assert f"Valid identified starts since {since}: {starts_share} (80 of 88 starts)" in text(ios)
    assert f'data-versions-total="start_share">{starts_share}<' in ios  # the versions agree
    # The chart's day says its share is of starts (days have no distinct users).
    assert (
        "40 valid, 7 invalid, missing or rejected, 1 visitors (85.1% of identified starts valid)"
        in ios
    )
    assert "Too few users to tell: 47 of the 100 distinct identified users needed" in text(ios)

    out, err = StringIO(), StringIO()
    call_command("trusted_identity", "status", "acme", stdout=out, stderr=err)
    line = next(row for row in out.getvalue().splitlines() if row.startswith("acme/ios"))
    assert line.split()[-9:-6] == [users_share, starts_share, "too-few-users-to-tell"]
    assert f"Since {since}:" in err.getvalue()
    out = StringIO()
    call_command("trusted_identity", "status", "acme", "--json", stdout=out)
    data = json.loads(out.getvalue())
    (entry,) = data["spaces"][0]["platforms"]
    assert percent(entry["valid_share"]) == users_share
    assert percent(entry["start_valid_share"]) == starts_share
    assert entry["distinct"] == {
        "valid": 40,
        "identified": 47,
        "failing": 8,
        "forms": {"token": 0, "public-key": 0},
    }
    assert data["since"] == window_start().isoformat().replace("+00:00", "Z")


def test_the_forms_figure_is_the_same_everywhere(owner_client, space, platform):
    """The share of the valid users who signed with a token and with a public key: the
    platform's forms line, the summary, the platform list and ``status`` (text and JSON)
    say the same figure, of the same users."""
    for n in range(6):
        counting.record_start(platform.pk, "valid", f"plain-{n}", form="plain")
    for n in range(3):
        counting.record_start(platform.pk, "valid", f"token-{n}", form="token")
    counting.record_start(platform.pk, "valid", "plain-0", form="token")  # both forms
    for n in range(2):
        counting.record_start(platform.pk, "valid", f"key-{n}", form="public-key")
        counting.record_start(platform.pk, "valid", f"key-{n}", form="public-key")  # again
    outcomes.flush()
    figures = figures_for([platform.pk])[platform.pk]
    assert (figures.distinct_valid, figures.users_by_form) == (11, {"token": 4, "public-key": 2})
    shares = "token 36.4% · public-key 18.2%"  # 4 and 2 of 11 users

    body = owner_client.get(settings_url(space)).content.decode()
    summary = body[body.index('id="summary"') : body.index("</section>")]
    cell = re.search(r'data-summary="form_shares"[^>]*>(.*?)</td>', summary, re.S).group(1)
    assert text(cell) == f"{shares} (key source: the secret)"
    line = text(re.search(r'id="forms-line-ios">(.*?)</span>', body, re.S).group(1))
    assert line == (f"Valid starts: 6 plain · 4 token · 4 public-key. Of 11 valid users: {shares}.")
    listing = owner_client.get(reverse("admin:trusted_identity_platform_changelist"))
    cell = re.search(r'<td class="field-form_shares">(.*?)</td>', listing.content.decode())
    assert text(cell.group(1)) == shares  # one form a line
    assert listing.context["cl"].has_filters and "key_source" in listing.content.decode()

    out = StringIO()
    call_command("trusted_identity", "status", "acme", stdout=out, stderr=StringIO())
    row = next(r for r in out.getvalue().splitlines() if r.startswith("acme/ios"))
    assert row.endswith(f"secret      {shares}")
    out = StringIO()
    call_command("trusted_identity", "status", "acme", "--json", stdout=out)
    (entry,) = json.loads(out.getvalue())["spaces"][0]["platforms"]
    assert entry["distinct"]["valid"] == 11
    assert entry["distinct"]["forms"] == {"token": 4, "public-key": 2}
    assert {form: n["valid"] for form, n in entry["forms"].items()} == {
        "plain": 6,
        "token": 4,
        "public-key": 4,
    }
