"""Revocation in the admin: grace 0 and "End the grace now" leave only the current secret,
and the page lists every secret that still verifies."""

from datetime import timedelta

from django.utils import timezone

from tests.support import verify_user_id
from trusted_identity.models import PlatformSecret
from trusted_identity.services import access, lookup, platform_secrets
from trusted_identity.signing import sign

from .helpers import action_url, current_secret, messages_of, platform_log, settings_url


def _verifies(platform, secret) -> bool:
    snapshot = lookup.lookup_platform(platform.api_key)
    return verify_user_id(snapshot, "u-1", sign(secret, "u-1"))


def _rotate(platform, grace):
    old = current_secret(platform)
    platform_secrets.rotate_secret(platform, access.get_cli_actor(), grace)
    return old


def _listed(body, kind):
    start = body.index(f'id="verifying-secrets-{kind}"')
    return body[start : body.index("</ul>", start)].count("<li ")


def test_the_page_lists_every_secret_that_still_verifies(owner_client, space, platform):
    _rotate(platform, timedelta(hours=24))
    _rotate(platform, timedelta(hours=1))
    body = owner_client.get(settings_url(space)).content.decode()
    assert _listed(body, "ios") == 3  # the current one and two in their grace
    assert body.count('data-secret="previous"') == 2
    assert 'id="revoke-previous-ios"' in body
    assert "ti-danger-button" in body


def test_rotating_with_none_in_the_admin_revokes_every_earlier_secret(
    owner_client, space, platform, django_capture_on_commit_callbacks
):
    """Finding 1: after A -> B with 24 h, B -> C with "None" left A verifying."""
    first = _rotate(platform, timedelta(hours=24))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            action_url(space, "rotate_secret", "ios"), {"grace": "0", "post": "yes"}, follow=True
        )
    assert "only the new one does" in " ".join(messages_of(response))
    current = current_secret(platform)
    assert _verifies(platform, current)
    assert not _verifies(platform, first)
    body = owner_client.get(settings_url(space)).content.decode()
    assert _listed(body, "ios") == 1
    assert 'id="revoke-previous-ios"' not in body
    assert 'id="previous-valid-until-ios">No previous secret verifies any more.' in body


def test_the_rotation_form_says_what_none_does(owner_client, space, platform):
    body = owner_client.get(action_url(space, "rotate_secret", "ios")).content.decode()
    assert "None: only the new secret verifies, every earlier one stops now" in body


def test_ending_the_grace_needs_the_confirmation_then_revokes_and_audits(
    owner_client, owner, space, platform, django_capture_on_commit_callbacks
):
    oldest = _rotate(platform, timedelta(hours=24))
    older = _rotate(platform, timedelta(hours=2))
    url = action_url(space, "revoke_previous", "ios")

    page = owner_client.get(url)
    body = page.content.decode()
    assert page.status_code == 200
    assert body.count("A previous secret (made ") == 2 and "verifying until" in body
    assert "Yes, end the grace now" in body and "ti-danger-button" in body
    owner_client.post(url, {})  # not confirmed: nothing happens
    assert _verifies(platform, oldest) and _verifies(platform, older)

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url, {"post": "yes"}, follow=True)
    assert "Ended the grace of 2 previous iOS secrets" in " ".join(messages_of(response))
    assert not _verifies(platform, oldest)
    assert not _verifies(platform, older)
    assert _verifies(platform, current_secret(platform))
    entry = platform_log(platform).last()
    assert entry.user == owner
    assert entry.get_change_message().startswith("Ended the grace of 2 previous secrets now")
    assert platform_secrets.previous_secret_valid_until(platform) is None

    again = owner_client.post(url, {"post": "yes"}, follow=True)
    assert "nothing changed" in " ".join(messages_of(again))
    assert platform_log(platform).last().pk == entry.pk  # no entry for a no-op


def test_grace_ends_keep_their_own_time_when_a_later_grace_is_longer(platform):
    """Only grace 0 cuts earlier graces short; a longer later grace never extends them."""
    oldest = _rotate(platform, timedelta(hours=1))
    _rotate(platform, timedelta(hours=24))
    ends = sorted(
        PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False).values_list(
            "valid_until", flat=True
        )
    )
    now = timezone.now()
    assert abs(ends[0] - (now + timedelta(hours=1))) < timedelta(minutes=1)
    assert abs(ends[1] - (now + timedelta(hours=24))) < timedelta(minutes=1)
    assert _verifies(platform, oldest)
