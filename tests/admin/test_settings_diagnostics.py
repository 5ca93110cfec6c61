"""The rollout parts of a space's Trusted Identity page, without a browser: the summary
of every platform, versions and the forecast, reasons, secret use, the failure log, the
last enforcement change, who sees what; the app's index and the space list linking to
the page; Add platform offering only the kinds a space lacks.
"""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from trusted_identity import outcomes
from trusted_identity.formatting import moment
from trusted_identity.models import FailureRecord, PlatformSecret, Role
from trusted_identity.services import access, counting, enforcement, platform_secrets
from trusted_identity.services.figures import window_start

from ..factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from .helpers import add_figures, current_secret, settings_url

APP = counting.ClientVersions


def starts(platform, outcome, n, *, app="none", reason=None, secret=False, form=None, prefix="u"):
    secret_id = platform_secrets.current_secret_row(platform).pk if secret else None
    for i in range(n):
        counting.record_start(
            platform.pk,
            outcome,
            f"{prefix}-{outcome}-{app}-{i}",
            form=form or ("plain" if outcome != "missing" else None),
            reason=reason,
            secret_id=secret_id,
            client=APP(app, "ios/2.0.0"),
        )
    outcomes.flush()


def section(body, kind):
    start = body.index(f'data-platform="{kind}"')
    end = body.find('<section class="module ti-platform"', start + 1)
    return body[start : end if end > 0 else len(body)]


@pytest.fixture
def viewer_client(client, space):
    user = UserFactory(username="victor")
    MembershipFactory(space=space, user=user, role=Role.VIEWER)
    client.force_login(user)
    return client


def test_summary_lists_every_platform_with_state_share_users_and_readiness(
    owner_client, space, platform
):
    web = PlatformFactory(space=space, kind="web", enforced=True)
    add_figures(web, valid=150, invalid=1)
    add_figures(platform, valid=3, missing=1)
    body = owner_client.get(settings_url(space)).content.decode()
    summary = body[
        body.index('id="summary"') : body.index("</section>", body.index('id="summary"'))
    ]
    rows = re.findall(r'data-summary-platform="(\w+)"', summary)
    assert rows == ["web", "ios"]
    web_row = summary[summary.index('data-summary-platform="web"') :]
    assert '<td data-summary="state">Enforced</td>' in web_row
    assert re.search(r'data-summary="valid_share"[^>]*>99.3% <', web_row)  # 150 of 151 users
    assert "(150 of 151 users)" in web_row
    assert 'data-now="quiet"' in web_row  # enforced: what it rejects now, not its readiness
    assert "data-readiness" not in web_row[: web_row.index("</tr>")]
    ios_row = summary[summary.index('data-summary-platform="ios"') :]
    assert '<td data-summary="state">Not enforced</td>' in ios_row
    assert 'data-readiness="not_enough_starts"' in ios_row
    assert "Too few users to tell" in ios_row


def test_share_line_says_users_and_identified_starts(owner_client, space, platform):
    starts(platform, "valid", 3, secret=True)
    starts(platform, "valid", 2, secret=True)  # the same users again: starts, not users
    starts(platform, "missing", 1)
    body = owner_client.get(settings_url(space)).content.decode()
    since = moment(window_start())
    assert f"Valid identified users since {since}: 75.0% (3 of 4 users)</p>" in body
    assert f"Valid identified starts since {since}: 83.3% (5 of 6 starts)</p>" in body
    # The minimum is of users too: 6 starts, but 4 users of the 100 needed.
    assert "Too few users to tell: 4 of the 100 distinct identified users needed" in body


def test_versions_table_and_forecast_when_not_enforced(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web", enforced=True)
    starts(platform, "valid", 6, app="3.2.0", secret=True)
    starts(platform, "invalid", 4, app="3.1.0", reason="no_match")
    starts(platform, "missing", 2)
    starts(web, "valid", 2, app="1.0.0", secret=True)
    body = owner_client.get(settings_url(space)).content.decode()
    ios = section(body, "ios")
    table = ios[ios.index('id="versions-ios"') :]
    assert re.findall(r'<tr data-version="([^"]+)"', table)[:3] == ["3.2.0", "3.1.0", "none"]
    row = table[table.index('data-version="3.1.0"') :]
    assert re.search(r'<td class="ti-num">4</td>\s*<td class="ti-num">0.0%</td>', row)
    assert 'data-version="none"' in table and "not sent" in table
    assert 'id="forecast-ios" data-forecast="too_young">Too early to forecast a day' in ios
    assert "6 starts without a valid signature, 66.7% of them from app versions ≤ 3.1.0" in ios
    assert 'id="forecast-web"' not in section(body, "web")  # enforced: no forecast


def test_reasons_lists_only_non_zero_ones_with_what_they_mean(owner_client, space, platform):
    starts(platform, "invalid", 3, reason="other_platform")
    starts(platform, "invalid", 1, reason="malformed")
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    reasons = body[body.index('id="reasons-ios"') : body.index('id="failures-ios"')]
    assert re.findall(r'data-reason="(\w+)"', reasons) == ["malformed", "other_platform"]
    assert "another platform of this space" in reasons
    assert "Not 64 hex digits, nor a token" in reasons
    assert "no_match" not in reasons and "expired_secret" not in reasons


def test_reasons_list_missing_signatures_with_what_they_mean(owner_client, space, platform):
    starts(platform, "missing", 30, reason="missing", form=None)
    starts(platform, "valid", 90)
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    reasons = body[body.index('id="reasons-ios"') : body.index('id="failures-ios"')]
    assert re.findall(r'data-reason="(\w+)"', reasons) == ["missing"]
    assert "A user id without a signature" in reasons
    assert "No identified start without a valid signature" not in reasons


def test_no_reasons_says_so(owner_client, space, platform):
    body = owner_client.get(settings_url(space)).content.decode()
    assert f"No identified start without a valid signature since {moment(window_start())}." in body


def test_previous_secret_use_safe_to_end_or_still_in_use(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web")
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=24))
    platform_secrets.rotate_secret(web, access.get_cli_actor(), timedelta(hours=24))
    previous = next(
        s for s in platform_secrets.verifying_secrets([web.pk])[web.pk] if not s.is_current
    )
    counting.record_start(web.pk, "valid", "u1", form="plain", secret_id=previous.secret_id)
    outcomes.flush()
    # The iOS secret was replaced three hours ago and nothing used it since.
    PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False).update(
        retired_at=timezone.now() - timedelta(hours=3)
    )
    body = owner_client.get(settings_url(space)).content.decode()
    ios, web_part = section(body, "ios"), section(body, "web")
    assert "Unused since the rotation 3\xa0hours ago: safe to end the grace." in ios
    assert 'data-usage="safe"' in ios
    assert 'data-usage="in-use"' in web_part
    assert "Since the rotation it verified 1 start, " in web_part
    assert "Still in use since the rotation, by 1 user: ending the grace now" in web_part
    assert re.search(
        r'data-secret="previous" data-verified-24h="1" data-since-rotation="1"', web_part
    )


def test_failure_log_shows_the_newest_twenty(owner_client, space, platform):
    now = timezone.now()
    for i in range(25):
        FailureRecord.objects.create(
            platform=platform,
            at=now - timedelta(minutes=i),
            outcome="invalid",
            reason="no_match",
            user_id=f"user-{i}",
            app_version="3.1.0" if i else "none",
            sdk_version="ios/2.0.0",
        )
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    log = body[body.index('id="failures-ios"') :]
    assert log.count('<tr data-outcome="invalid">') == 20
    assert log.index("user-0<") < log.index("user-1<")  # newest first
    assert "user-19<" in log and "user-20<" not in log
    assert "The newest 20 failures are shown." in log
    assert now.strftime("%Y-%m-%d") in log and " UTC</time>" in log


def test_failure_log_footer_says_how_many_were_logged_of_how_many_failed(
    owner_client, space, platform, monkeypatch
):
    """51 failed starts in one second: 43 no_match, 5 malformed, 3 missing; the log keeps
    FAILURE_LOG_PER_SECOND of each reason, and the footer says how many of how many."""
    monkeypatch.setattr(counting, "time", type("Frozen", (), {"time": staticmethod(lambda: 1e9)}))
    starts(platform, "invalid", 43, reason="no_match")
    starts(platform, "invalid", 5, reason="malformed", prefix="m")
    starts(platform, "missing", 3, reason="missing", form=None)
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    log = body[body.index('id="failures-ios"') :]
    logged = set(re.findall(r"<td><code>(\w+)</code></td>", log))
    assert logged == {"no_match", "malformed", "missing"}  # an example of every reason
    footer = log[log.index('id="failure-coverage-ios"') :]
    assert re.search(r"6 logged of 51 failed starts since \d{4}-\d\d-\d\d \d\d:00 UTC", footer)
    assert "at most 2 a second per reason" in footer


def test_user_ids_of_the_failure_log_show_control_and_bidi_characters(
    owner_client, space, platform
):
    FailureRecord.objects.create(
        platform=platform,
        at=timezone.now(),
        outcome="invalid",
        reason="no_match",
        user_id="evil\u202egnp.exe\n",
        app_version="none",
        sdk_version="none",
    )
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    log = body[body.index('id="failures-ios"') :]
    assert "evil&lt;U+202E&gt;gnp.exe&lt;U+000A&gt;" in log and "\u202e" not in log


def test_empty_failure_log(owner_client, space, platform):
    assert "No failed start logged." in owner_client.get(settings_url(space)).content.decode()


def test_who_turned_enforcement_on_when_and_the_override_reason(owner_client, space, platform):
    user = UserFactory(username="alice")
    MembershipFactory(space=space, user=user, role=Role.ADMIN)
    enforcement.set_enforcement(
        platform, True, access.Actor.admin(user), force=True, reason="Launch day, 2.0 is out"
    )
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    change = body[body.index('id="enforcement-change-ios"') :]
    assert "Turned on by alice, " in change
    assert re.search(r"Turned on by alice, \d{4}-\d\d-\d\d \d\d:\d\d UTC", change)
    assert 'id="override-reason-ios"' in change
    assert "reason: “Launch day, 2.0 is out”" in change
    assert "Overriding the readiness rule: turned on with too few users to tell (" in change


def test_enforcement_turned_off_from_the_cli_says_so(owner_client, space, platform):
    cli = access.get_cli_actor()
    enforcement.set_enforcement(platform, True, cli, force=True, reason="test")
    enforcement.set_enforcement(platform, False, cli)
    body = section(owner_client.get(settings_url(space)).content.decode(), "ios")
    change = body[body.index('id="enforcement-change-ios"') :]
    assert "Turned off by" in change and "(command line" in change
    assert 'id="override-reason-ios"' not in body


def test_viewer_sees_the_figures_but_no_controls_and_no_secret(viewer_client, space, platform):
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=24))
    starts(platform, "invalid", 2, reason="no_match")
    response = viewer_client.get(settings_url(space))
    body = response.content.decode()
    assert response.status_code == 200
    for part in ('id="summary"', 'id="versions-ios"', 'id="reasons-ios"', 'id="failures-ios"'):
        assert part in body
    for control in ("reveal-ios", "rotate-ios", "enforcement-ios", "revoke-previous-ios"):
        assert f'id="{control}"' not in body
    assert current_secret(platform) not in body
    assert "tis_" not in body  # no secret of any kind in the HTML


def test_the_revealed_secret_is_the_only_one_and_the_form_lands_on_it(
    owner_client, space, platform
):
    body = owner_client.get(settings_url(space)).content.decode()
    assert 'reveal/#secret-label-ios"' in body
    assert "tis_" not in body


def test_page_sends_the_tester_slot(owner_client, space, platform):
    body = owner_client.get(settings_url(space)).content.decode()
    assert 'class="ti-tester-slot" id="tester-ios"' in body


# --------------------------------------------------- reaching the page, adding


def test_space_list_links_the_page_right_after_the_name(owner_client, space):
    body = owner_client.get(reverse("admin:trusted_identity_space_changelist")).content.decode()
    headers = re.findall(r'<th scope="col"\s+class="[^"]*column-(\w+)', body)
    assert headers[:2] == ["name", "settings_link"]
    assert f'href="{settings_url(space)}" class="ti-settings-link"' in body


def test_app_index_links_each_visible_space_page(owner_client, space):
    other = SpaceFactory(slug="globex", name="Globex")
    body = owner_client.get(reverse("admin:app_list", args=["trusted_identity"])).content.decode()
    assert 'id="trusted-identity-pages"' in body
    assert f'href="{settings_url(space)}" class="ti-settings-link">Acme<' in body
    assert settings_url(other) not in body  # not one of the owner's spaces


def test_add_platform_offers_only_the_kinds_the_space_lacks(owner_client, space, platform):
    PlatformFactory(space=space, kind="web")
    url = reverse("admin:trusted_identity_platform_add") + f"?space={space.pk}"
    form = owner_client.get(url).context["adminform"].form
    kinds = [value for value, _label in form.fields["kind"].choices if value]
    assert kinds == ["android", "tvos", "androidtv", "roku"]
    body = owner_client.get(settings_url(space)).content.decode()
    assert f"?space={space.pk}" in body  # the page's Add platform link
    for odd in ("abc", "-1", "9" * 40):
        response = owner_client.get(
            reverse("admin:trusted_identity_platform_add") + f"?space={odd}"
        )
        assert response.status_code == 200


def test_no_add_platform_when_every_kind_is_there(owner_client, space):
    for kind in ("web", "ios", "android", "tvos", "androidtv", "roku"):
        PlatformFactory(space=space, kind=kind)
    body = owner_client.get(settings_url(space)).content.decode()
    assert ">Add platform</a>" not in body


def test_signatures_accepted_shows_the_valid_starts_by_form(owner_client, space, platform):
    body = owner_client.get(settings_url(space)).content.decode()
    assert 'id="forms-line-ios">No valid signed start in the window yet.</span>' in body
    starts(platform, "valid", 3, form="plain")
    starts(platform, "valid", 1, form="token", prefix="t")
    starts(platform, "invalid", 5, form="token", reason="token_expired", prefix="x")
    body = owner_client.get(settings_url(space)).content.decode()
    assert (
        'id="forms-line-ios">Valid starts: 3 plain · 1 token · 0 public-key. '
        "Of 4 valid users: token 25.0% · public-key 0.0%.</span>"
    ) in body
