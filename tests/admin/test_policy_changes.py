"""The space page's "last changed by" lines, read from the ``PolicyChange`` records:
the override reason verbatim (escaped, never cut), the name recorded at the time (a
deleted user's too), the door, per platform; and no query per platform."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_identity.models import Role
from trusted_identity.services import access, enforcement, signature_forms

from ..factories import MembershipFactory, PlatformFactory, UserFactory
from .helpers import settings_url
from .test_settings_diagnostics import section


def _change(owner_client, space, kind, marker):
    body = section(owner_client.get(settings_url(space)).content.decode(), kind)
    return body[body.index(f'id="{marker}-{kind}"') :].split("</p>", 1)[0]


def test_the_reason_is_shown_verbatim_and_escaped(owner_client, space, platform):
    reason = 'hotfix for [OPS-12]; "override reason: x" <b>'
    enforcement.set_enforcement(platform, True, access.get_cli_actor(), force=True, reason=reason)
    change = _change(owner_client, space, "ios", "enforcement-change")
    assert "Turned on by trusted-identity-cli" in change
    assert "(command line)" in change
    assert "reason: “hotfix for [OPS-12]; &quot;override reason: x&quot; &lt;b&gt;”" in change


def test_a_deleted_user_still_shows_their_recorded_name(owner_client, space, platform):
    leaver = UserFactory(username="leaver")
    MembershipFactory(space=space, user=leaver, role=Role.ADMIN)
    enforcement.set_enforcement(
        platform, True, access.Actor.admin(leaver), force=True, reason="before leaving"
    )
    leaver.delete()
    change = _change(owner_client, space, "ios", "enforcement-change")
    assert "Turned on by leaver, " in change
    assert "before leaving" in change


def test_the_last_signature_form_change_is_shown_per_platform(owner_client, space, platform):
    web = PlatformFactory(space=space, kind="web")
    user = UserFactory(username="alice")
    MembershipFactory(space=space, user=user, role=Role.ADMIN)
    signature_forms.set_signature_form(
        platform, "token", access.Actor.admin(user), force=True, reason="v3 [OPS-9]"
    )
    change = _change(owner_client, space, "ios", "signature-form-change")
    assert "Last changed by alice (Admin), " in change
    assert "reason: “v3 [OPS-9]”" in change
    web_body = section(owner_client.get(settings_url(space)).content.decode(), "web")
    assert 'id="signature-form-change-web"' not in web_body  # never changed
    signature_forms.set_signature_form(web, "either", access.get_cli_actor())
    change = _change(owner_client, space, "web", "signature-form-change")
    assert "Last changed by trusted-identity-cli (Command line), " in change
    assert "Readiness overridden" not in change


def test_the_page_reads_the_records_in_one_query_per_reader(owner_client, space, platform):
    for kind in ("ios", "web", "android", "tvos"):
        other = platform if kind == "ios" else PlatformFactory(space=space, kind=kind)
        enforcement.set_enforcement(other, True, access.get_cli_actor(), force=True, reason="r")
        signature_forms.set_signature_form(other, "either", access.get_cli_actor())
    with CaptureQueriesContext(connection) as queries:
        owner_client.get(settings_url(space))
    records = [q for q in queries.captured_queries if "policychange" in q["sql"]]
    # Enforcement, signature forms and key sources, whatever the platforms.
    assert len(records) == 3
