"""The confirmation pages of the gated changes carry the evidence: the verdict telling
"not rolled out" from "too little data to tell", the starts and users a day the change
would refuse, the span observed, the reasons and the app versions that don't sign."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from trusted_identity.models import PlatformSecret, PolicyChange
from trusted_identity.services import counting, key_sources, public_keys
from trusted_identity.services.counting import ClientVersions

from ..keytoken_helpers import private_keys, public_pem_of
from .helpers import action_url

pytestmark = pytest.mark.django_db


def starts(platform, n, outcome="valid", *, form="plain", reason=None, app="3.2.0", hours_ago=30):
    """``n`` starts of ``n`` distinct users, ``hours_ago`` hours ago."""
    at = timezone.now() - timedelta(hours=hours_ago)
    for i in range(n):
        counting.record_start(
            platform.pk,
            outcome,
            f"{outcome}-{form}-{app}-{hours_ago}-{i}",
            form=form if outcome == "valid" else None,
            reason=reason,
            client=ClientVersions(app=app),
            at=at,
        )


def text(response) -> str:
    """The page's text, tags and runs of white space dropped."""
    body = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(body))


def enforcement_page(owner_client, space):
    return owner_client.post(action_url(space, "enforcement", "ios"), {"enabled": "on"})


def token_page(owner_client, space):
    return owner_client.post(action_url(space, "signature_form", "ios"), {"form": "token"})


def verdict(response) -> str:
    return re.search(r'id="evidence" data-verdict="(\w+)"', response.content.decode())[1]


# ----------------------------------------------------------------- enforcement


def test_enforcement_ready(owner_client, space, platform):
    starts(platform, 200)
    page = enforcement_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "ready"
    assert (
        "Ready: 100.0% of the 200 distinct identified users of the last 1 day had a valid "
        "signature (threshold 99.0%)." in words
    )
    assert "Enforcing now would have rejected no identified start in the 1 day observed." in words
    assert "No identified start without a valid signature in the window." in words
    assert "No app version below the 99.0% threshold." in words
    assert "of the 7-day readiness window." in words and "Observed since " in words
    assert 'name="override"' not in page.content.decode()


def test_enforcement_not_rolled_out(owner_client, space, platform):
    starts(platform, 180)
    starts(platform, 20, "missing", reason="missing", app="2.9.0")
    page = enforcement_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "not_rolled_out"
    assert (
        "Signing is not rolled out far enough: only 90.0% of the 200 distinct identified users "
        "of the last 1 day had a valid signature, below the 99.0% threshold." in words
    )
    # 20 failing starts (and users) over 30 hours and some minutes: about 15 a day.
    assert re.search(
        r"Enforcing now would reject about 1[56] identified starts a day, from about 1[56] "
        r"users a day: 20 starts without a valid signature in the 1 day observed, and 20 "
        r"distinct users who made them \(a user with a valid start on one device is still "
        r"rejected on another\)\. 100\.0% of those starts came from "
        r"app versions ≤ 2\.9\.0\.",
        words,
    )
    assert "missing 20 A user id without a signature" in words
    assert "2.9.0 : 0.0% valid of 20 identified starts (20 without a valid signature)." in words
    assert "3.2.0 :" not in words
    refused = owner_client.post(
        action_url(space, "enforcement", "ios"), {"enabled": "on", "post": "yes"}
    )
    assert refused.context["form"].errors["override"] == [
        "Signing is not rolled out far enough. Tick the override box to turn enforcement on anyway."
    ]


def test_enforcement_too_few_users(owner_client, space, platform):
    starts(platform, 12)
    page = enforcement_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "too_little_data"
    assert (
        "Too little data to tell: 12 distinct identified users in the last 1 day, at least 100 "
        "are needed to judge whether signing is rolled out." in words
    )
    assert "not rolled out far enough" not in words
    refused = owner_client.post(
        action_url(space, "enforcement", "ios"), {"enabled": "on", "post": "yes"}
    )
    errors = refused.context["form"].errors["override"]
    assert errors == [
        "There is too little data to tell whether signing is rolled out. Tick the override box "
        "to turn enforcement on anyway."
    ]
    assert "not rolled out far enough" not in text(refused)


def test_enforcement_too_young_a_window(owner_client, space, platform):
    starts(platform, 200, hours_ago=0)
    starts(platform, 1, "invalid", reason="no_match", hours_ago=0)
    page = enforcement_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "too_little_data"
    assert (
        "Too little data to tell: the platform was observed for only 1 hour, less than a day."
        in words
    )
    assert "so no override is needed" in words
    assert "That is less than a day" in words
    assert "Over less than a day, a rate a day is a guess." in words
    assert "no_match 1" in words
    assert 'name="override"' not in page.content.decode()  # the rule's figures are met


# ------------------------------------------------------------------ token only


def test_token_ready(owner_client, space, platform):
    starts(platform, 150, form="token")
    page = token_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "ready"
    assert (
        "Ready: 150 of the 150 distinct valid users of the last 1 day (100.0%) used a token "
        "(threshold 99.0%)." in words
    )
    assert (
        "No valid start was signed plain in the 1 day observed: accepting only tokens refuses "
        "no client the counts have seen." in words
    )
    assert 'name="override"' not in page.content.decode()


def test_token_not_rolled_out(owner_client, space, platform):
    starts(platform, 100, form="token")
    starts(platform, 50, form="plain")
    page = token_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "not_rolled_out"
    assert (
        "Tokens are not rolled out far enough: only 100 of the 150 distinct valid users of the "
        "last 1 day (66.7%) used a token, below the 99.0% threshold." in words
    )
    assert re.search(
        r"Accepting only tokens would refuse about (?:39|40) starts a day still signed plain, "
        # 50 over 30 to 31 hours (the first counted hour to now): 39 or 40 a day.
        r"from about (?:39|40) users a day: 50 valid plain starts in the 1 day observed, and "
        r"50 distinct "
        r"users who never signed with a token \(HS256 or public-key\)\.",
        words,
    )
    refused = owner_client.post(
        action_url(space, "signature_form", "ios"), {"form": "token", "post": "yes"}
    )
    assert "Tokens are not rolled out far enough." in refused.context["form"].errors["override"][0]


def test_token_only_forecast_leaves_public_key_users_out(owner_client, space, platform):
    """Accepting only tokens refuses plain signatures, never a public-key token: the users
    it may refuse are those who signed with neither kind of token."""
    starts(platform, 100, form="token")
    starts(platform, 50, form="plain")
    starts(platform, 30, form="public-key")
    words = text(token_page(owner_client, space))
    # The rule reads HS256 token users (100 of 180); 50 users signed with no token at all.
    assert "only 100 of the 180 distinct valid users of the last 1 day (55.6%) used a token" in (
        words
    )
    assert "50 valid plain starts in the 1 day observed, and 50 distinct users who never" in (words)
    assert "accepting only tokens now rejects every plain signature still sent" in words
    assert "(public-key tokens are not affected)" in words


def test_token_too_little_data(owner_client, space, platform):
    starts(platform, 7, form="token")
    page = token_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "too_little_data"
    assert (
        "Too little data to tell: 7 distinct valid users in the last 1 day, at least 100 are "
        "needed to judge whether tokens are rolled out." in words
    )
    refused = owner_client.post(
        action_url(space, "signature_form", "ios"), {"form": "token", "post": "yes"}
    )
    assert refused.context["form"].errors["override"] == [
        "There is too little data to tell whether every client sends a token. Tick the "
        "override box to accept only tokens anyway."
    ]


def test_token_too_young_a_window(owner_client, space, platform):
    starts(platform, 150, form="token", hours_ago=0)
    page = token_page(owner_client, space)
    assert verdict(page) == "too_little_data"
    assert "the platform was observed for only 1 hour, less than a day" in text(page)


def test_no_token_evidence_for_a_change_that_locks_nobody_out(owner_client, space, platform):
    page = owner_client.post(action_url(space, "signature_form", "ios"), {"form": "either"})
    assert page.status_code == 200
    assert 'id="evidence"' not in page.content.decode()


# ----------------------------------------------------------- public keys only


def key_source_page(owner_client, space, **data):
    return owner_client.post(
        action_url(space, "key_source", "ios"), {"source": "public-key", **data}
    )


@pytest.fixture
def keyed(platform, cli_actor):
    pem = public_pem_of(private_keys()["ES256"])
    public_keys.add_public_key(platform, pem, cli_actor, kid="k1")
    key_sources.set_key_source(platform, "both", cli_actor)
    return platform


def test_public_keys_only_not_rolled_out(owner_client, space, keyed):
    starts(keyed, 120, form="public-key")
    starts(keyed, 30, form="plain")
    starts(keyed, 10, form="token")
    page = key_source_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "not_rolled_out"
    assert (
        "Public keys are not rolled out far enough: only 120 of the 160 distinct valid users "
        "of the last 1 day (75.0%) signed with a public key, below the 99.0% threshold." in words
    )
    assert re.search(
        r"Verifying public keys only would refuse about (?:31|32) starts a day still signed "
        r"with the secret, from about (?:31|32) users a day: 40 valid starts signed with the "
        r"secret \(plain or HS256 token\) in the 1 day observed, and 40 distinct users who "
        r"never signed with a public key\.",
        words,
    )
    assert "verifying public keys only now rejects every signature made with the secret" in words
    refused = key_source_page(owner_client, space, post="yes")
    assert (
        "Public keys are not rolled out far enough."
        in (refused.context["form"].errors["override"][0])
    )
    assert PlatformSecret.objects.filter(platform=keyed).exists()


def test_public_keys_only_ready_needs_no_override(owner_client, space, keyed):
    starts(keyed, 150, form="public-key")
    page = key_source_page(owner_client, space)
    words = text(page)
    assert verdict(page) == "ready"
    assert "Ready: 150 of the 150 distinct valid users of the last 1 day (100.0%) signed" in words
    assert "No valid start was signed with the secret in the 1 day observed" in words
    assert 'name="override"' not in page.content.decode()
    done = key_source_page(owner_client, space, post="yes")
    assert done.status_code == 302
    keyed.refresh_from_db()
    assert keyed.key_source == "public-key"
    change = PolicyChange.objects.filter(platform=keyed, setting="key_source").latest("at", "id")
    assert (change.readiness, change.readiness_count, change.overridden) == ("ready", 150, False)
