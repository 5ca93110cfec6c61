"""The signature tester words what verification decides (``verification.explain_signed``):
for every verdict, it names the reason a session start at the same moment counts and the
secret that start verified with, or whose match named its reason.

Against a real database: session start runs for real; ``diagnostic_match`` is only
watched (called through), to see which secret refined a start's reason.
"""

import secrets
import time
from datetime import timedelta

import jwt
import pytest

from trusted_identity.models import PlatformSecret
from trusted_identity.services import (
    lookup,
    platform_secrets,
    sessions,
    signature_forms,
    verification,
)
from trusted_identity.services.signature_tester import check_signature as run_tester
from trusted_identity.signing import sign

from .helpers import USER_ID, _secret

NOW = float(int(time.time()))


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


@pytest.fixture
def refinements(monkeypatch):
    """The secrets ``diagnostic_match`` found, in the order it was asked."""
    found = []
    real = verification.diagnostic_match

    def watched(*args, **kwargs):
        result = real(*args, **kwargs)
        found.append(None if result is None else result.secret_id)
        return result

    monkeypatch.setattr(verification, "diagnostic_match", watched)
    return found


def token_for(secret, user_id=USER_ID, iat=NOW, lifetime=600):
    return jwt.encode({"sub": user_id, "iat": iat, "exp": iat + lifetime}, secret, "HS256")


def current_id(platform):
    return PlatformSecret.objects.filter(platform=platform).current().get().pk


def both(platform, actor, signed, refinements):
    """(the tester's verdict, what session start decided, the secret that refined it)."""
    started = sessions.start_session(
        lookup.lookup_platform(platform.api_key), {"userId": USER_ID, "signed": signed}
    ).verification
    refined = refinements[-1] if refinements else None
    refinements.clear()
    verdict = run_tester(actor, platform, None, USER_ID, signed, now=NOW)
    return verdict, started, refined


def test_valid_current_and_previous_name_the_secret_that_verified(platform, cli_actor, refinements):
    signature_forms.set_signature_form(platform, "either", cli_actor)
    old, old_id = _secret(platform, cli_actor), current_id(platform)
    new = platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=1))
    new_id = current_id(platform)
    for secret, secret_id, word in (
        (new, new_id, "valid-current"),
        (old, old_id, "valid-previous"),
    ):
        for signed in (sign(secret, USER_ID), token_for(secret)):
            verdict, started, refined = both(platform, cli_actor, signed, refinements)
            assert (verdict.verdict, verdict.secret_id, verdict.reason) == (word, secret_id, None)
            assert (started.valid, started.secret_id, started.reason) == (True, secret_id, None)
            assert verdict.form == started.form and refined is None


def test_expired_secret_is_the_secret_that_refined_the_start(platform, cli_actor, refinements):
    signature_forms.set_signature_form(platform, "either", cli_actor)
    old, old_id = _secret(platform, cli_actor), current_id(platform)
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    for signed in (sign(old, USER_ID), token_for(old)):
        verdict, started, refined = both(platform, cli_actor, signed, refinements)
        assert (verdict.verdict, verdict.secret_id, verdict.reason) == (
            "expired-secret",
            old_id,
            "expired_secret",
        )
        assert (started.reason, refined) == ("expired_secret", old_id)


def test_other_platform_is_the_secret_that_refined_the_start(
    platform, other_platform, cli_actor, refinements
):
    theirs, their_id = _secret(other_platform, cli_actor), current_id(other_platform)
    verdict, started, refined = both(platform, cli_actor, sign(theirs, USER_ID), refinements)
    assert (verdict.verdict, verdict.secret_id, verdict.other_platform, verdict.reason) == (
        "other-platform",
        their_id,
        "android",
        "other_platform",
    )
    assert (started.reason, refined) == ("other_platform", their_id)


@pytest.mark.parametrize(
    ("signed", "word", "reason"),
    [
        ("zz", "malformed", "malformed"),
        ("a.b.c", "malformed", "token_malformed"),
        (secrets.token_hex(32), "no-match", "no_match"),
    ],
    # Ids that don't change between collections (pytest-xdist's workers each collect).
    ids=["zz", "a.b.c", "random-hex"],
)
def test_malformed_and_no_match_name_no_secret(
    platform, other_platform, cli_actor, refinements, signed, word, reason
):
    verdict, started, refined = both(platform, cli_actor, signed, refinements)
    assert (verdict.verdict, verdict.secret_id, verdict.reason) == (word, None, reason)
    assert (started.reason, refined) == (reason, None)


def test_a_refused_signature_names_its_secret_and_the_reason_a_start_counts(
    platform, cli_actor, refinements
):
    secret, secret_id = _secret(platform, cli_actor), current_id(platform)
    signature_forms.set_signature_form(platform, "either", cli_actor)
    for signed, reason in (
        (token_for(secret, iat=NOW - 3600), "token_expired"),
        (token_for(secret, user_id="someone-else"), "token_subject_mismatch"),
    ):
        verdict, started, refined = both(platform, cli_actor, signed, refinements)
        assert (verdict.verdict, verdict.secret_id, verdict.reason) == (
            "valid-current",
            secret_id,
            reason,
        )
        assert (started.reason, verdict.accepted, refined) == (reason, False, None)
    signature_forms.set_signature_form(platform, "token", cli_actor, force=True, reason="a test")
    verdict, started, _ = both(platform, cli_actor, sign(secret, USER_ID), refinements)
    assert (verdict.verdict, verdict.secret_id, verdict.reason) == (
        "valid-current",
        secret_id,
        "form_not_allowed",
    )
    assert started.reason == "form_not_allowed"


def test_explain_signed_reports_the_grace_end_of_a_previous_and_an_expired_secret(
    platform, cli_actor
):
    old, old_id = _secret(platform, cli_actor), current_id(platform)
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=1))
    snapshot = lookup.lookup_platform(platform.api_key)
    (grace_end,) = [s.expires_at for s in snapshot.secrets if s.expires_at is not None]
    signed = sign(old, USER_ID)
    during = verification.explain_signed(snapshot, USER_ID, signed, grace_end - 1)
    assert during.verification.valid
    assert during.secret == (old_id, "previous", grace_end, None)
    after = verification.explain_signed(snapshot, USER_ID, signed, grace_end)  # exactly at it
    assert after.verification.reason == "expired_secret"
    assert after.secret == (old_id, "expired", grace_end, None)


@pytest.mark.parametrize(
    ("given", "signed_for", "change"),
    [
        ("user-1", "user-1 ", "with a trailing space"),
        ("user-1", "user-1\n", "with a trailing newline"),
        ("user-1 ", "user-1", "without its trailing whitespace"),
        ("User-1", "user-1", "in lower case"),
        ("42", "42.0", "the same number written as a float, with .0"),
        ("42.0", "42", "the same number written as an integer"),
        ("42", "4.2e1", "the same number in exponent notation"),
        ("user-1", '"user-1"', "JSON-quoted (with its double quotes)"),
        ("a b", "a%20b", "URL-encoded"),
    ],
)
def test_no_match_names_the_id_variant_the_signature_was_made_for(
    platform, cli_actor, given, signed_for, change
):
    secret = _secret(platform, cli_actor)
    verdict = run_tester(cli_actor, platform, None, given, sign(secret, signed_for), now=NOW)
    assert (verdict.verdict, verdict.secret_id, verdict.reason) == ("no-match", None, "no_match")
    assert verdict.variant == (signed_for, change)
    assert verdict.variant_secret.state == "current"
    assert verdict.as_json()["variant"] == {"user_id": signed_for, "change": change}
    assert repr(signed_for) in verdict.describe() and change in verdict.describe()
    assert verdict.hashed == given.encode()  # the bytes of the id as given, still


def test_a_variant_is_tried_against_expired_and_other_platforms_secrets(
    platform, other_platform, cli_actor
):
    theirs = _secret(other_platform, cli_actor)
    verdict = run_tester(cli_actor, platform, None, "user-1", sign(theirs, "user-1 "), now=NOW)
    assert verdict.variant.user_id == "user-1 "
    assert (verdict.variant_secret.state, verdict.variant_secret.other_kind) == (
        "other_platform",
        "android",
    )
    assert "the current secret of the android platform" in verdict.describe()
    old = _secret(platform, cli_actor)
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    verdict = run_tester(cli_actor, platform, None, "USER-1", sign(old, "user-1"), now=NOW)
    assert (verdict.variant.user_id, verdict.variant_secret.state) == ("user-1", "expired")


def test_no_variant_when_nothing_matches_nor_for_a_token_or_a_malformed_one(platform, cli_actor):
    for signed in (secrets.token_hex(32), "zz", "a.b.c"):
        verdict = run_tester(cli_actor, platform, None, "user-1", signed, now=NOW)
        assert verdict.variant is None and verdict.as_json()["variant"] is None


def test_variants_are_bounded_one_match_each(platform, cli_actor, monkeypatch):
    """Each variant is tried once against the secrets, at most MAX_VARIANTS of them."""
    from trusted_identity.idvariants import MAX_VARIANTS

    calls = []
    real = verification.matching_secret

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(verification, "matching_secret", counted)
    run_tester(cli_actor, platform, None, " Ünï 42\n" * 50, secrets.token_hex(32), now=NOW)
    assert 0 < len(calls) <= MAX_VARIANTS
    assert len(calls) == len(set(calls))


def test_the_audit_names_the_variant_never_the_signature(platform, cli_actor):
    from .helpers import _audit_events

    signed = sign(_secret(platform, cli_actor), "user-1 ")
    run_tester(cli_actor, platform, None, "user-1", signed, now=NOW)
    entry = _audit_events(platform).filter(message__startswith="Tested").last()
    assert "It is for the id 'user-1 ' (with a trailing space)." in entry.message
    assert signed not in entry.message


def test_the_public_endpoint_never_tries_variants(platform, cli_actor, monkeypatch):
    monkeypatch.setattr(verification, "matching_secret", pytest.fail)
    signed = sign(_secret(platform, cli_actor), "user-1 ")
    started = sessions.start_session(
        lookup.lookup_platform(platform.api_key), {"userId": "user-1", "signed": signed}
    )
    assert (started.signature, started.verification.reason) == ("invalid", "no_match")
