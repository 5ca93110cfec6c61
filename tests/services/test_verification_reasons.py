"""Why a signature did not verify (CONTRACT section 8): the reasons of verification,
the secrets kept after their grace to recognise ``expired_secret``, and which secret
verified a valid start.

Against a real database: no mock of our own code. Time passes by editing grace ends in
the database (with the generation bumped, as a service would) or with ``now=``.
"""

import secrets
import time
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from tests.support import read_generation, verify_user_id
from trusted_identity.crypto import generate_key
from trusted_identity.exceptions import TrustedIdentityError
from trusted_identity.models import PlatformSecret
from trusted_identity.services import (
    lookup,
    platform_secrets,
    retention,
    sessions,
    signature_forms,
    spaces,
    verification,
)
from trusted_identity.services.lookup import DIAGNOSTIC_EXPIRED_MAX
from trusted_identity.services.rekey import rekey
from trusted_identity.signing import sign

from ..factories import PlatformFactory
from .helpers import USER_ID, _secret, _set_keys


def snapshot(platform):
    return lookup.lookup_platform(platform.api_key)


def reason_of(platform, signed, user_id=USER_ID, now=None):
    return verification.verify_signed(snapshot(platform), user_id, signed, now).reason


def token_for(secret, user_id=USER_ID, lifetime=3600):
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + lifetime}, secret, "HS256")


def either(platform, actor):
    signature_forms.set_signature_form(platform, "either", actor)


def end_grace(platform, commit, ago):
    """The retired secrets of ``platform`` ended their grace ``ago`` (a timedelta)."""
    with commit():
        PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False).update(
            valid_until=timezone.now() - ago
        )
        lookup.verification_changed()  # the edit bypassed the service layer


def row_ids(platform):
    return set(PlatformSecret.objects.filter(platform=platform).values_list("pk", flat=True))


# --------------------------------------------------------------- the reasons


def test_malformed_and_no_match(platform, other_platform):
    assert reason_of(platform, "zz") == "malformed"
    assert reason_of(platform, "0" * 63) == "malformed"
    assert reason_of(platform, secrets.token_hex(32)) == "no_match"
    assert reason_of(platform, sign("tis_ios_" + "x" * 48, USER_ID)) == "no_match"


def test_the_current_secret_of_another_platform_of_the_space(platform, other_platform, cli_actor):
    theirs = _secret(other_platform, cli_actor)
    assert reason_of(platform, sign(theirs, USER_ID)) == "other_platform"
    assert reason_of(platform, sign(theirs, "someone-else"), "someone-else") == "other_platform"
    assert reason_of(platform, sign(theirs, "someone-else")) == "no_match"  # wrong user id


def test_a_platform_of_another_space_is_no_match(platform, cli_actor):
    elsewhere = PlatformFactory(space__slug="elsewhere", kind="android")
    assert reason_of(platform, sign(_secret(elsewhere, cli_actor), USER_ID)) == "no_match"


def test_the_previous_secret_of_another_platform_is_no_match(
    platform, other_platform, cli_actor, commit
):
    old = _secret(other_platform, cli_actor)
    with commit():
        new = platform_secrets.rotate_secret(other_platform, cli_actor)  # old still verifies there
    assert reason_of(platform, sign(old, USER_ID)) == "no_match"  # only current ones count
    assert reason_of(platform, sign(new, USER_ID)) == "other_platform"


def test_a_revoked_secret_is_an_expired_secret(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    result = verification.verify_signed(snapshot(platform), USER_ID, sign(old, USER_ID))
    assert (result.valid, result.form, result.reason, result.secret_id) == (
        False,
        "plain",
        "expired_secret",
        None,
    )


def test_a_grace_that_ends_while_cached_is_an_expired_secret(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=1))
    snap = snapshot(platform)  # cached from now on: nothing bumps the generation
    (grace_end,) = [s.expires_at for s in snap.secrets if s.expires_at is not None]
    signed = sign(old, USER_ID)
    assert verification.verify_signed(snap, USER_ID, signed, grace_end - 1).valid
    late = verification.verify_signed(snap, USER_ID, signed, grace_end)
    assert (late.valid, late.reason) == (False, "expired_secret")
    much_later = grace_end + timedelta(days=30, seconds=1).total_seconds()
    assert verification.verify_signed(snap, USER_ID, signed, much_later).reason == "no_match"


def test_an_expired_secret_is_kept_30_days_then_deleted_by_prune(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=1))
    end_grace(platform, commit, timedelta(days=29, hours=23))
    assert reason_of(platform, sign(old, USER_ID)) == "expired_secret"
    assert retention.prune().expired_secrets_deleted == 0
    assert len(row_ids(platform)) == 2
    end_grace(platform, commit, timedelta(days=30, minutes=1))
    assert reason_of(platform, sign(old, USER_ID)) == "no_match"  # before prune too
    with commit():
        assert retention.prune().expired_secrets_deleted == 1
    assert len(row_ids(platform)) == 1
    assert reason_of(platform, sign(old, USER_ID)) == "no_match"


def test_rotation_deletes_secrets_past_the_retention_and_keeps_the_others(
    platform, cli_actor, commit
):
    old = _secret(platform, cli_actor)
    with commit():
        middle = platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    end_grace(platform, commit, timedelta(days=31))  # old: past the retention
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))  # middle: just ended
    assert len(row_ids(platform)) == 2
    assert reason_of(platform, sign(old, USER_ID)) == "no_match"
    assert reason_of(platform, sign(middle, USER_ID)) == "expired_secret"


def test_the_retention_is_a_setting(platform, cli_actor, commit, settings):
    old = _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    end_grace(platform, commit, timedelta(days=3))
    assert reason_of(platform, sign(old, USER_ID)) == "expired_secret"
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "EXPIRED_SECRET_RETENTION": timedelta(days=2),
    }
    assert reason_of(platform, sign(old, USER_ID)) == "no_match"
    assert retention.prune().expired_secrets_deleted == 1


def test_only_the_latest_expired_secrets_are_tried(platform, cli_actor, commit):
    first = _secret(platform, cli_actor)
    with commit():
        for _ in range(DIAGNOSTIC_EXPIRED_MAX + 1):
            platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    snap = snapshot(platform)
    assert len(snap.expired) == DIAGNOSTIC_EXPIRED_MAX
    assert reason_of(platform, sign(first, USER_ID)) == "no_match"  # the oldest is left out


def test_an_expired_secret_is_never_accepted_nor_listed(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    platform.enforced = True
    platform.save()
    with commit():
        lookup.verification_changed()
    with pytest.raises(TrustedIdentityError) as refused:
        sessions.start_session(
            snapshot(platform), {"userId": USER_ID, "signed": sign(old, USER_ID)}
        )
    assert refused.value.code == "signature_invalid"
    listed = platform_secrets.verifying_secrets([platform.pk])[platform.pk]
    assert [s.is_current for s in listed] == [True]
    assert platform_secrets.previous_secret_valid_until(platform) is None
    assert platform_secrets.reveal_secret(platform, cli_actor) == new


def test_a_secret_that_cannot_be_decrypted_leaves_the_reason_no_match(
    platform, other_platform, cli_actor, commit
):
    theirs = _secret(other_platform, cli_actor)
    with commit():
        PlatformSecret.objects.filter(platform=other_platform).update(ciphertext="garbage")
        lookup.verification_changed()
    assert reason_of(platform, sign(theirs, USER_ID)) == "no_match"  # not a 503
    assert verify_user_id(snapshot(platform), USER_ID, sign(_secret(platform, cli_actor), USER_ID))


# ------------------------------------------------------------------ tokens


def test_tokens_of_another_platform_and_of_an_expired_secret(
    platform, other_platform, cli_actor, commit
):
    either(platform, cli_actor)
    theirs, old = _secret(other_platform, cli_actor), _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    for signed, reason in (
        (token_for(theirs), "other_platform"),
        (token_for(old), "expired_secret"),
        (token_for("tis_ios_" + "y" * 48), "no_match"),
        ("a.b.c", "token_malformed"),
    ):
        result = verification.verify_signed(snapshot(platform), USER_ID, signed)
        assert (result.valid, result.form, result.reason) == (False, "token", reason)


def test_a_token_of_another_platform_names_it_whatever_its_claims(
    platform, other_platform, cli_actor
):
    either(platform, cli_actor)
    signed = token_for(_secret(other_platform, cli_actor), user_id="someone-else")
    assert reason_of(platform, signed) == "other_platform"  # the claims are never read


# ---------------------------------------------------------- which secret verified


def test_a_valid_start_names_the_secret_that_verified_it(platform, cli_actor, commit):
    either(platform, cli_actor)
    old = _secret(platform, cli_actor)
    (old_id,) = row_ids(platform)
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=1))
    (new_id,) = row_ids(platform) - {old_id}
    snap = snapshot(platform)
    for secret, secret_id in ((old, old_id), (new, new_id)):
        plain = verification.verify_signed(snap, USER_ID, sign(secret, USER_ID))
        assert plain == (True, "plain", None, secret_id, None)
        token = verification.verify_signed(snap, USER_ID, token_for(secret))
        assert token == (True, "token", None, secret_id, None)


def test_a_valid_start_allocates_no_result(platform, cli_actor):
    signed = sign(_secret(platform, cli_actor), USER_ID)
    snap = snapshot(platform)
    first = verification.verify_signed(snap, USER_ID, signed)
    assert verification.verify_signed(snap, USER_ID, signed) is first


# ------------------------------------------------ changes reach the diagnosis


def test_rotating_another_platform_bumps_the_generation_and_the_diagnosis(
    platform, other_platform, cli_actor, commit
):
    before = _secret(other_platform, cli_actor)
    assert reason_of(platform, sign(before, USER_ID)) == "other_platform"  # warm
    generation = read_generation()
    with commit():
        after = platform_secrets.rotate_secret(other_platform, cli_actor, timedelta(0))
    assert read_generation() > generation
    assert reason_of(platform, sign(after, USER_ID)) == "other_platform"
    assert reason_of(platform, sign(before, USER_ID)) == "no_match"


def test_ending_a_grace_bumps_the_generation_and_the_diagnosis(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(hours=1))
    assert verify_user_id(snapshot(platform), USER_ID, sign(old, USER_ID))  # warm
    generation = read_generation()
    with commit():
        assert platform_secrets.revoke_previous(platform, cli_actor) == 1
    assert read_generation() > generation
    assert reason_of(platform, sign(old, USER_ID)) == "expired_secret"


def test_adding_a_platform_bumps_the_generation(platform, cli_actor, commit):
    assert reason_of(platform, secrets.token_hex(32)) == "no_match"  # warm
    generation = read_generation()
    with commit():
        web = spaces.add_platform(platform.space, "web", cli_actor)
    assert read_generation() > generation
    assert reason_of(platform, sign(_secret(web, cli_actor), USER_ID)) == "other_platform"


def test_rekey_reencrypts_the_kept_secrets(space, cli_actor, commit, settings):
    first_key, second_key = generate_key(), generate_key()
    _set_keys(settings, first_key)
    platform = PlatformFactory(space=space, kind="ios")
    old = _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    _set_keys(settings, f"{second_key},{first_key}")
    with commit():
        result = rekey()
    assert (result.total, result.rekeyed, result.failed) == (2, 2, [])
    _set_keys(settings, second_key)  # the first key retired
    assert reason_of(platform, sign(old, USER_ID)) == "expired_secret"
