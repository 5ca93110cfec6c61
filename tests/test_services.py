"""The service layer, against a real database: no mock of our own code.

Cache invalidation runs on commit. Tests run inside a transaction that never
commits, so every write whose effect on the (warm) platform cache matters is wrapped
in ``django_capture_on_commit_callbacks(execute=True)``, which runs the callbacks as
a real commit would.
"""

import base64
import pickle
import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from trusted_identity import services
from trusted_identity.conf import app_settings
from trusted_identity.crypto import DecryptionError, KeyRing, generate_key, key_id_for
from trusted_identity.exceptions import (
    AlreadyExists,
    InvalidApiKey,
    InvalidRequest,
    PermissionDenied,
    PlatformNotFound,
    ServiceUnavailable,
    SignatureInvalid,
    SignatureRequired,
    SpaceNotFound,
    UserNotFound,
)
from trusted_identity.models import (
    OutcomeCount,
    Platform,
    PlatformKind,
    PlatformSecret,
    Role,
    SpaceMembership,
)
from trusted_identity.services import NotReady
from trusted_identity.services.lookup import cache_key
from trusted_identity.signing import sign

from .factories import (
    MembershipFactory,
    OutcomeCountFactory,
    PlatformFactory,
    SpaceFactory,
    UserFactory,
)

USER_ID = "user-1"

# ------------------------------------------------------------------- helpers


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """``with commit():`` runs on-commit callbacks at the end, as a commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def other_platform(space):
    return PlatformFactory(space=space, kind="android")


def _secret(platform, actor):
    return services.reveal_secret(platform, actor)


def _start(platform, payload):
    return services.start_session(services.lookup_platform(platform.api_key), payload)


def _verifies(platform, secret, user_id=USER_ID):
    snapshot = services.lookup_platform(platform.api_key)
    return services.verify_user_id(snapshot, user_id, sign(secret, user_id))


def _counts(platform):
    rows = (
        OutcomeCount.objects.filter(platform=platform)
        .values("outcome")
        .annotate(total=Sum("count"))
        .order_by()
    )
    return {row["outcome"]: row["total"] for row in rows}


def _logs(obj):
    return LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
    ).order_by("pk")


def _current_rows(platform):
    return PlatformSecret.objects.filter(platform=platform, retired_at__isnull=True)


def _set_keys(settings, keys):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": keys}


def _key_id(key):
    return key_id_for(base64.urlsafe_b64decode(key))


# ------------------------------------------------------- spaces and platforms


def test_create_space(db):
    space = services.create_space("news", name="The News")
    assert space.pk and space.slug == "news" and space.name == "The News"
    with pytest.raises(AlreadyExists):
        services.create_space("news")


@pytest.mark.parametrize("slug", ["", "has space", "sl/ash", "x" * 65, "nul\x00"])
def test_create_space_refuses_bad_slugs(db, slug):
    with pytest.raises(InvalidRequest):
        services.create_space(slug)


def test_add_platform_every_kind(space, cli_actor):
    platforms = [services.add_platform(space, kind) for kind in PlatformKind.values]
    api_keys = [p.api_key for p in platforms]
    assert len(set(api_keys)) == len(PlatformKind.values) == 6
    assert all(key.startswith("tik_") and len(key) >= 30 for key in api_keys)
    for platform in platforms:
        rows = PlatformSecret.objects.filter(platform=platform)
        assert rows.count() == 1
        assert rows.get().is_current and rows.get().valid_until is None
        assert not platform.enforced
        secret = _secret(platform, cli_actor)
        assert secret.startswith(f"tis_{platform.kind}_")
    secrets = {_secret(p, cli_actor) for p in platforms}
    assert len(secrets) == 6


def test_add_platform_twice_is_already_exists(space, platform):
    with pytest.raises(AlreadyExists):
        services.add_platform(space, "ios")
    assert Platform.objects.filter(space=space, kind="ios").count() == 1
    assert PlatformSecret.objects.filter(platform__space=space).count() == 1
    # Another space may have an ios platform of its own.
    assert services.add_platform(SpaceFactory(), "ios").kind == "ios"


@pytest.mark.parametrize("kind", ["tv", "IOS", "", "windows"])
def test_add_platform_unknown_kind(space, kind):
    with pytest.raises(PlatformNotFound):
        services.add_platform(space, kind)
    assert not Platform.objects.exists()


def test_get_platform_names_what_is_missing(platform):
    assert services.get_platform("acme", "ios") == platform
    with pytest.raises(SpaceNotFound):
        services.get_platform("nope", "ios")
    with pytest.raises(PlatformNotFound):
        services.get_platform("acme", "web")


# ------------------------------------------------------------------ rotation


def test_rotation_with_default_grace_keeps_both_verifying(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    assert _verifies(platform, old)  # warms the cache
    with commit():
        new = services.rotate_secret(platform, cli_actor)
    assert new != old
    assert _verifies(platform, new)
    assert _verifies(platform, old)
    retired = PlatformSecret.objects.get(platform=platform, retired_at__isnull=False)
    expected_end = retired.retired_at + timedelta(hours=24)
    assert retired.valid_until == expected_end
    assert abs(retired.valid_until - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    assert _secret(platform, cli_actor) == new


def test_default_grace_follows_the_setting(settings, platform, cli_actor):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "DEFAULT_GRACE": timedelta(hours=2)}
    services.rotate_secret(platform, cli_actor)
    retired = PlatformSecret.objects.get(platform=platform, retired_at__isnull=False)
    assert retired.valid_until - retired.retired_at == timedelta(hours=2)


def test_rotation_with_zero_grace_revokes_at_once(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    assert _verifies(platform, old)  # warms the cache
    with commit():
        new = services.rotate_secret(platform, cli_actor, grace=timedelta(0))
    assert not _verifies(platform, old)
    assert _verifies(platform, new)
    assert services.previous_secret_valid_until(platform) is None


def test_two_rotations_with_grace_all_still_verify(platform, cli_actor, commit):
    first = _secret(platform, cli_actor)
    with commit():
        second = services.rotate_secret(platform, cli_actor)
    with commit():
        third = services.rotate_secret(platform, cli_actor, grace=timedelta(hours=1))
    assert len({first, second, third}) == 3
    assert _verifies(platform, first)
    assert _verifies(platform, second)
    assert _verifies(platform, third)
    assert _current_rows(platform).count() == 1
    assert PlatformSecret.objects.filter(platform=platform).count() == 3
    # The last of the previous secrets ends with the longer, first grace period.
    until = services.previous_secret_valid_until(platform)
    assert until - timezone.now() > timedelta(hours=23)


def test_signing_uses_the_new_secret(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    assert services.sign_for("acme", "ios", USER_ID) == sign(old, USER_ID)
    with commit():
        new = services.rotate_secret(platform, cli_actor)
    signed = services.sign_for("acme", "ios", USER_ID)
    assert signed == sign(new, USER_ID)
    assert signed != sign(old, USER_ID)


def test_expired_previous_secrets_stop_verifying(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        new = services.rotate_secret(platform, cli_actor)
    assert _verifies(platform, old)
    # Time passes: the grace period ends (edited in the database, not mocked).
    PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False).update(
        valid_until=timezone.now() - timedelta(seconds=1)
    )
    services.invalidate_platform(platform.api_key)  # the edit bypassed the service layer
    assert not _verifies(platform, old)
    assert _verifies(platform, new)
    assert services.previous_secret_valid_until(platform) is None
    # The next rotation clears the expired row away.
    with commit():
        newest = services.rotate_secret(platform, cli_actor)
    assert PlatformSecret.objects.filter(platform=platform).count() == 2
    assert _verifies(platform, new) and _verifies(platform, newest)
    assert not _verifies(platform, old)


def test_exactly_one_current_secret_after_rotations(platform, cli_actor):
    for grace in (timedelta(hours=24), timedelta(0), timedelta(minutes=30), timedelta(days=7)):
        services.rotate_secret(platform, cli_actor, grace=grace)
        assert _current_rows(platform).count() == 1
    current = _current_rows(platform).get()
    assert current.valid_until is None
    assert _secret(platform, cli_actor) == current.get_secret()


@pytest.mark.parametrize("grace", [timedelta(seconds=-1), timedelta(days=91)])
def test_rotation_refuses_bad_grace(platform, cli_actor, grace):
    before = list(PlatformSecret.objects.values_list("pk", "ciphertext", "retired_at"))
    with pytest.raises(InvalidRequest):
        services.rotate_secret(platform, cli_actor, grace=grace)
    assert list(PlatformSecret.objects.values_list("pk", "ciphertext", "retired_at")) == before


def test_grace_ends_on_time_even_in_a_warm_cache(platform, cli_actor, commit):
    """The cached snapshot carries the end of grace: it can't outlive it."""
    old = _secret(platform, cli_actor)
    with commit():
        new = services.rotate_secret(platform, cli_actor, grace=timedelta(seconds=1))
    assert _verifies(platform, old)  # warms the cache while the old secret is in grace
    time.sleep(1.1)
    assert not _verifies(platform, old)
    assert _verifies(platform, new)


def test_enforced_session_start_accepts_a_secret_in_grace(platform, cli_actor, commit):
    services.set_enforcement(platform, True, cli_actor)
    old = _secret(platform, cli_actor)
    payload = {"userId": USER_ID, "signed": sign(old, USER_ID)}
    with commit():
        services.rotate_secret(platform, cli_actor)
    assert _start(platform, payload).trusted
    with commit():
        services.rotate_secret(platform, cli_actor, grace=timedelta(0))
    # The first secret is still in its own grace; the second was revoked at once.
    assert _start(platform, payload).trusted
    second = PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False)
    second = second.order_by("-created_at").first().get_secret()
    with pytest.raises(SignatureInvalid):
        _start(platform, {"userId": USER_ID, "signed": sign(second, USER_ID)})
    assert _counts(platform) == {"valid": 2, "rejected": 1}


def test_node_vectors_verify_through_session_start(platform, node_vectors, commit):
    """A secret stored like any other (encrypted) checks what Node signed, end to end."""
    row = _current_rows(platform).get()
    for vector in node_vectors:
        row.set_secret(vector["secret"])
        with commit():
            row.save(update_fields=["ciphertext"])
            services.invalidate_platform(platform.api_key)
        result = _start(platform, {"userId": vector["userId"], "signed": vector["signed"]})
        assert result.trusted, vector["userId"]
        assert result.user_id == vector["userId"]
        assert services.sign_for("acme", "ios", vector["userId"]) == vector["signed"]
    assert _counts(platform) == {"valid": len(node_vectors)}


def test_the_platform_cache_holds_ciphertexts_only(platform, cli_actor):
    secret = _secret(platform, cli_actor)
    assert _verifies(platform, secret)
    cached = caches[app_settings.CACHE_ALIAS].get(cache_key(platform.api_key))
    assert cached is not None
    image = pickle.dumps(cached)
    assert _current_rows(platform).get().ciphertext.encode() in image
    assert secret.encode() not in image


# ------------------------------------------------------------ session starts

# case: (payload builder(own secret, other platform's secret),
#        signature when accepted, exception when enforced, outcome off, outcome on)
CASES = {
    "valid": (
        lambda own, other: {"userId": USER_ID, "signed": sign(own, USER_ID), "fields": {"a": 1}},
        "valid",
        None,
    ),
    "upper-case-valid": (
        lambda own, other: {"userId": USER_ID, "signed": sign(own, USER_ID).upper()},
        "valid",
        None,
    ),
    "invalid": (
        lambda own, other: {"userId": USER_ID, "signed": sign(own, "someone-else")},
        "invalid",
        SignatureInvalid,
    ),
    "malformed": (
        lambda own, other: {"userId": USER_ID, "signed": "not-a-signature"},
        "invalid",
        SignatureInvalid,
    ),
    "missing": (lambda own, other: {"userId": USER_ID}, "missing", SignatureRequired),
    "empty-signed": (
        lambda own, other: {"userId": USER_ID, "signed": ""},
        "missing",
        SignatureRequired,
    ),
    "visitor": (lambda own, other: {"fields": {"plan": "free"}}, "none", None),
    "visitor-empty-body": (lambda own, other: {}, "none", None),
    "other-platforms-secret": (
        lambda own, other: {"userId": USER_ID, "signed": sign(other, USER_ID)},
        "invalid",
        SignatureInvalid,
    ),
}
OUTCOME_OF = {"valid": "valid", "invalid": "invalid", "missing": "missing", "none": "visitor"}


@pytest.mark.parametrize("enforced", [False, True], ids=["enforcement-off", "enforcement-on"])
@pytest.mark.parametrize("case", list(CASES))
def test_session_start_decision_matrix(platform, other_platform, cli_actor, enforced, case):
    build, signature, refusal = CASES[case]
    own, other = _secret(platform, cli_actor), _secret(other_platform, cli_actor)
    if enforced:
        services.set_enforcement(platform, True, cli_actor)
    payload = build(own, other)

    if enforced and refusal is not None:
        with pytest.raises(refusal):
            _start(platform, payload)
        # Counted once, as rejected, and not also as invalid or missing.
        assert _counts(platform) == {"rejected": 1}
    else:
        result = _start(platform, payload)
        assert result.signature == signature
        assert result.trusted is (signature == "valid")
        assert result.anonymous is (signature == "none")
        assert result.user_id == payload.get("userId")
        assert (result.space, result.platform) == ("acme", "ios")
        assert result.as_dict()["trusted"] is result.trusted
        assert _counts(platform) == {OUTCOME_OF[signature]: 1}
    assert _counts(other_platform) == {}


def test_session_ids_are_opaque_and_unique(platform):
    ids = {_start(platform, {}).session_id for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 20 for i in ids)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"userId": 42}, id="userId-not-a-string"),
        pytest.param({"userId": ["42"]}, id="userId-a-list"),
        pytest.param({"userId": ""}, id="empty-userId"),
        pytest.param({"signed": "ab" * 32}, id="signed-without-userId"),
        pytest.param({"userId": "u", "signed": 5}, id="signed-not-a-string"),
        pytest.param({"userId": "u", "fields": ["a"]}, id="fields-not-an-object"),
        pytest.param({"userId": "u", "fields": "a"}, id="fields-a-string"),
        pytest.param([], id="body-a-list"),
        pytest.param("userId", id="body-a-string"),
        pytest.param(None, id="body-null"),
        pytest.param({"userId": "x" * 1025}, id="userId-too-long"),
        pytest.param({"userId": "ab\ud800cd"}, id="lone-surrogate"),
        pytest.param({"userId": "u", "signed": "a" * 257}, id="signed-too-long"),
    ],
)
def test_malformed_session_requests(platform, payload):
    with pytest.raises(InvalidRequest):
        services.parse_session_request(payload)
    with pytest.raises(InvalidRequest):
        _start(platform, payload)
    assert _counts(platform) == {}


def test_parse_session_request_accepts_the_edges():
    assert services.parse_session_request({}) == (None, None)
    assert services.parse_session_request({"userId": None, "signed": None}) == (None, None)
    assert services.parse_session_request({"userId": "u", "signed": ""}) == ("u", None)
    longest = "x" * 1024
    assert services.parse_session_request({"userId": longest}) == (longest, None)
    assert services.parse_session_request({"userId": " 42 "}) == (" 42 ", None)


# -------------------------------------------------------------- enforcement


def test_enforcement_refused_below_threshold(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=98)
    OutcomeCountFactory(platform=platform, outcome="invalid", count=1)
    OutcomeCountFactory(platform=platform, outcome="missing", count=1)
    OutcomeCountFactory(platform=platform, outcome="visitor", count=500)
    logs_before = _logs(platform).count()
    with pytest.raises(NotReady) as excinfo:
        services.set_enforcement(platform, True, cli_actor)
    figures = excinfo.value.figures
    assert (figures.valid, figures.invalid, figures.missing, figures.visitor) == (98, 1, 1, 500)
    assert figures.identified == 100
    assert figures.valid_share == pytest.approx(0.98)
    assert "98.00%" in excinfo.value.message
    platform.refresh_from_db()
    assert not platform.enforced
    assert _logs(platform).count() == logs_before


def test_enforcement_allowed_without_identified_starts(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="visitor", count=50)
    services.set_enforcement(platform, True, cli_actor)
    platform.refresh_from_db()
    assert platform.enforced
    assert platform.enforcement_changed_at is not None


def test_enforcement_allowed_at_the_threshold(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=99)
    OutcomeCountFactory(platform=platform, outcome="missing", count=1)
    assert services.readiness(platform).valid_share == pytest.approx(0.99)
    services.set_enforcement(platform, True, cli_actor)
    platform.refresh_from_db()
    assert platform.enforced


def test_starts_outside_the_readiness_window_do_not_count(platform, cli_actor):
    OutcomeCountFactory(
        platform=platform,
        outcome="invalid",
        count=1000,
        hour=(timezone.now() - timedelta(days=8)).replace(minute=0, second=0, microsecond=0),
    )
    OutcomeCountFactory(platform=platform, outcome="valid", count=10)
    assert services.readiness(platform).invalid == 0
    services.set_enforcement(platform, True, cli_actor)
    assert Platform.objects.get(pk=platform.pk).enforced


@pytest.mark.parametrize("reason", ["", "   "])
def test_force_without_reason_is_invalid(platform, cli_actor, reason):
    OutcomeCountFactory(platform=platform, outcome="missing", count=10)
    with pytest.raises(InvalidRequest):
        services.set_enforcement(platform, True, cli_actor, force=True, reason=reason)
    assert not Platform.objects.get(pk=platform.pk).enforced


def test_force_with_reason_turns_on_and_records_the_reason(platform, cli_actor):
    OutcomeCountFactory(platform=platform, outcome="valid", count=5)
    OutcomeCountFactory(platform=platform, outcome="missing", count=5)
    reason = "old app versions are being retired today"
    services.set_enforcement(platform, True, cli_actor, force=True, reason=reason)
    assert Platform.objects.get(pk=platform.pk).enforced
    entry = _logs(platform).last()
    assert reason in entry.change_message
    assert "50.00%" in entry.change_message
    assert entry.user_id == cli_actor.user.pk


def test_turning_enforcement_off(platform, cli_actor, commit):
    services.set_enforcement(platform, True, cli_actor)
    with pytest.raises(SignatureRequired):
        _start(platform, {"userId": USER_ID})  # warms the cache with enforcement on
    with commit():
        services.set_enforcement(platform, False, cli_actor)
    assert not Platform.objects.get(pk=platform.pk).enforced
    assert _start(platform, {"userId": USER_ID}).signature == "missing"
    assert "off" in _logs(platform).last().change_message
    # Turning it off again changes nothing and writes nothing.
    logs = _logs(platform).count()
    services.set_enforcement(platform, False, cli_actor)
    assert _logs(platform).count() == logs


def test_turning_enforcement_on_reaches_a_warm_cache(platform, cli_actor, commit):
    assert _start(platform, {}).signature == "none"  # warms the cache, enforcement off
    with commit():
        services.set_enforcement(platform, True, cli_actor)
    with pytest.raises(SignatureRequired):
        _start(platform, {"userId": USER_ID})


# -------------------------------------------------------------------- audit


def test_reveal_rotate_and_toggle_are_audited_without_the_secret(platform, cli_actor, caplog):
    caplog.set_level("DEBUG")
    seen = []
    platform_type = ContentType.objects.get_for_model(Platform)

    def _one_new_entry(before, word):
        entries = list(LogEntry.objects.filter(pk__gt=before))
        assert len(entries) == 1
        entry = entries[0]
        assert entry.content_type_id == platform_type.pk
        assert entry.object_id == str(platform.pk)
        assert entry.user_id == cli_actor.user.pk
        assert word in entry.change_message.lower()
        return entry.pk

    last = LogEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    seen.append(services.reveal_secret(platform, cli_actor))
    last = _one_new_entry(last, "reveal")
    seen.append(services.rotate_secret(platform, cli_actor))
    last = _one_new_entry(last, "rotate")
    seen.append(services.rotate_secret(platform, cli_actor, grace=timedelta(0)))
    last = _one_new_entry(last, "rotate")
    services.set_enforcement(platform, True, cli_actor)
    last = _one_new_entry(last, "on")
    services.set_enforcement(platform, False, cli_actor)
    last = _one_new_entry(last, "off")
    seen.append(services.reveal_secret(platform, cli_actor))
    _one_new_entry(last, "reveal")

    entries = list(LogEntry.objects.values_list("object_repr", "change_message"))
    text = repr(entries) + caplog.text
    assert "Revealed" in caplog.text  # the audit log line was written
    for secret in seen:
        assert secret not in text
        assert secret[len("tis_ios_") :] not in text


# -------------------------------------------------------------- permissions

OPERATIONS = {
    "reveal": lambda platform, actor: services.reveal_secret(platform, actor),
    "rotate": lambda platform, actor: services.rotate_secret(platform, actor),
    "enforce": lambda platform, actor: services.set_enforcement(platform, True, actor),
}


def _state(platform):
    return (
        list(PlatformSecret.objects.filter(platform=platform).values_list("pk", "ciphertext")),
        Platform.objects.get(pk=platform.pk).enforced,
        _logs(platform).count(),
    )


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_superuser_may_do_everything(platform, superuser, operation):
    before = _state(platform)
    OPERATIONS[operation](platform, services.Actor.admin(superuser))
    after = _state(platform)
    assert after[2] == before[2] + 1  # audited
    assert after != before


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_and_admin_may_reveal_rotate_and_enforce(platform, cli_actor, role):
    user = UserFactory()
    MembershipFactory(space=platform.space, user=user, role=role)
    actor = services.Actor.admin(user)
    assert services.reveal_secret(platform, actor) == _secret(platform, cli_actor)
    new = services.rotate_secret(platform, actor)
    assert _secret(platform, cli_actor) == new
    services.set_enforcement(platform, True, actor)
    assert Platform.objects.get(pk=platform.pk).enforced
    assert _logs(platform).filter(user=user).count() == 3


def _viewer(space):
    user = UserFactory()
    MembershipFactory(space=space, user=user, role=Role.VIEWER)
    return user


def _owner_elsewhere(space):
    user = UserFactory()
    MembershipFactory(space=SpaceFactory(), user=user, role=Role.OWNER)
    return user


def _non_staff_owner(space):
    user = UserFactory(is_staff=False)
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


def _inactive_owner(space):
    user = UserFactory(is_active=False)
    MembershipFactory(space=space, user=user, role=Role.OWNER)
    return user


@pytest.mark.parametrize(
    "make_user",
    [_viewer, _owner_elsewhere, _non_staff_owner, _inactive_owner],
    ids=["viewer", "owner-of-another-space", "non-staff-owner", "inactive-owner"],
)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_denied(platform, make_user, operation):
    actor = services.Actor.admin(make_user(platform.space))
    before = _state(platform)
    with pytest.raises(PermissionDenied):
        OPERATIONS[operation](platform, actor)
    assert _state(platform) == before


def test_viewer_sees_figures_only(platform):
    user = _viewer(platform.space)
    assert services.can(user, "view", platform.space)
    assert not services.can(user, "reveal", platform.space)
    assert list(services.spaces_visible_to(user)) == [platform.space]
    assert list(services.spaces_visible_to(_owner_elsewhere(platform.space))) != [platform.space]


# -------------------------------------------------------------- memberships


def test_grant_regrant_and_revoke(platform, cli_actor):
    user = UserFactory(username="dana", is_staff=False)
    membership = services.grant(platform.space, "dana", Role.VIEWER, cli_actor)
    user.refresh_from_db()
    assert user.is_staff
    assert membership.role == Role.VIEWER
    actor = services.Actor.admin(user)
    with pytest.raises(PermissionDenied):
        services.reveal_secret(platform, actor)

    services.grant(platform.space, "dana", Role.ADMIN, cli_actor)
    assert SpaceMembership.objects.filter(user=user).count() == 1
    assert SpaceMembership.objects.get(user=user).role == Role.ADMIN
    assert services.reveal_secret(platform, actor).startswith("tis_ios_")

    services.revoke(platform.space, "dana", cli_actor)
    assert not SpaceMembership.objects.filter(user=user).exists()
    with pytest.raises(PermissionDenied):
        services.reveal_secret(platform, actor)
    messages = " ".join(_logs(platform.space).values_list("change_message", flat=True))
    assert "Granted dana the viewer role" in messages and "Revoked dana" in messages


def test_grant_and_revoke_unknown_user(space, cli_actor):
    with pytest.raises(UserNotFound):
        services.grant(space, "nobody", Role.ADMIN, cli_actor)
    with pytest.raises(UserNotFound):
        services.revoke(space, "nobody", cli_actor)
    UserFactory(username="eve")
    with pytest.raises(UserNotFound):
        services.revoke(space, "eve", cli_actor)  # exists, but not a member
    with pytest.raises(InvalidRequest):
        services.grant(space, "eve", "superhero", cli_actor)
    assert not SpaceMembership.objects.exists()


def test_only_owners_manage_members(space):
    admin = UserFactory()
    MembershipFactory(space=space, user=admin, role=Role.ADMIN)
    owner = UserFactory()
    MembershipFactory(space=space, user=owner, role=Role.OWNER)
    UserFactory(username="frank", is_staff=False)
    with pytest.raises(PermissionDenied):
        services.grant(space, "frank", Role.OWNER, services.Actor.admin(admin))
    assert not SpaceMembership.objects.filter(user__username="frank").exists()
    services.grant(space, "frank", Role.VIEWER, services.Actor.admin(owner))
    assert SpaceMembership.objects.get(user__username="frank").role == Role.VIEWER


# ---------------------------------------------------- plaintext never stored


def _raw_database_text():
    """Every value of every table, read with raw SQL."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        values.append(bytes(value).decode("latin-1"))
                    else:
                        values.append(str(value))
    return "\n".join(values)


def _sqlite_file_bytes(tmp_path: Path) -> list[bytes]:
    """The database file's bytes: the file itself when there is one, and a serialized
    copy of what this connection sees (which works for the in-memory test database)."""
    if connection.vendor != "sqlite":
        return []
    images = []
    name = str(connection.settings_dict["NAME"])
    if name and not name.startswith("file:") and ":memory:" not in name and Path(name).is_file():
        images.append(Path(name).read_bytes())
    connection.ensure_connection()
    raw = connection.connection
    if hasattr(raw, "serialize"):  # Python 3.11+: the pages this connection sees
        copy = tmp_path / "copy.sqlite3"
        copy.write_bytes(raw.serialize())
        # The copy is a real database file holding our rows (the test's transaction
        # is still open, which is why this is not a sqlite3 backup: that would wait).
        with closing(sqlite3.connect(copy)) as check:
            table = PlatformSecret._meta.db_table
            assert check.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0
        images.append(copy.read_bytes())
    return images


def test_the_database_holds_no_plaintext_secret(space, cli_actor, tmp_path):
    other_space = SpaceFactory()
    platforms = [
        PlatformFactory(space=space, kind="ios"),
        PlatformFactory(space=space, kind="web"),
        PlatformFactory(space=other_space, kind="roku"),
    ]
    plaintexts = []
    for platform in platforms:
        plaintexts.append(services.reveal_secret(platform, cli_actor))
        plaintexts.append(services.rotate_secret(platform, cli_actor))
        plaintexts.append(services.rotate_secret(platform, cli_actor, grace=timedelta(hours=1)))
        _start(platform, {"userId": USER_ID, "signed": sign(plaintexts[-1], USER_ID)})
    assert len(set(plaintexts)) == 9
    needles = [s for secret in plaintexts for s in (secret, secret.split("_", 2)[2])]

    ciphertexts = list(PlatformSecret.objects.values_list("ciphertext", flat=True))
    assert len(ciphertexts) == 9
    for ciphertext in ciphertexts:
        assert ciphertext.startswith("v1:")
        assert not any(needle in ciphertext for needle in needles)

    dump = _raw_database_text()
    assert ciphertexts[0] in dump  # the dump really holds the secrets table
    assert not [needle for needle in needles if needle in dump]

    images = _sqlite_file_bytes(tmp_path)
    if connection.vendor == "sqlite" and sys.version_info >= (3, 11):
        assert images
    for image in images:
        assert ciphertexts[0].encode() in image  # the copy really holds our rows
        assert not [needle for needle in needles if needle.encode() in image]
        assert not [needle for needle in needles if needle.encode("utf-16-le") in image]


# ------------------------------------------------ ciphertext bound to its row


def test_a_ciphertext_copied_to_another_platform_does_not_decrypt(
    platform, other_platform, cli_actor
):
    donor_secret = _secret(platform, cli_actor)
    own_secret = _secret(other_platform, cli_actor)
    donor_ciphertext = _current_rows(platform).get().ciphertext
    _current_rows(other_platform).update(ciphertext=donor_ciphertext)

    row = _current_rows(other_platform).get()
    assert row.ciphertext == donor_ciphertext
    with pytest.raises(DecryptionError):
        row.get_secret()
    with pytest.raises(ServiceUnavailable):
        services.reveal_secret(other_platform, cli_actor)

    for secret in (donor_secret, own_secret):
        with pytest.raises(ServiceUnavailable) as excinfo:
            _start(other_platform, {"userId": USER_ID, "signed": sign(secret, USER_ID)})
        assert excinfo.value.code == "service_unavailable"
        assert donor_secret not in excinfo.value.message
    with pytest.raises(ServiceUnavailable):
        services.sign_for("acme", "android", USER_ID)
    assert "valid" not in _counts(other_platform)
    # The donor is untouched.
    assert _start(platform, {"userId": USER_ID, "signed": sign(donor_secret, USER_ID)}).trusted


# -------------------------------------------------------------------- rekey


def test_rekey_across_two_keys_then_the_old_key_removed(settings, space, cli_actor, commit):
    old_key, new_key = generate_key(), generate_key()
    _set_keys(settings, old_key)
    ios = PlatformFactory(space=space, kind="ios")
    web = PlatformFactory(space=space, kind="web")
    previous = {p.pk: _secret(p, cli_actor) for p in (ios, web)}
    with commit():
        current = {p.pk: services.rotate_secret(p, cli_actor) for p in (ios, web)}
    assert all(_verifies(p, previous[p.pk]) for p in (ios, web))  # warms every cache
    key_ids = {t.split(":")[1] for t in PlatformSecret.objects.values_list("ciphertext", flat=True)}
    assert key_ids == {_key_id(old_key)}

    # Without the old key nothing can be read: the key really matters.
    _set_keys(settings, new_key)
    with pytest.raises(ServiceUnavailable):
        services.reveal_secret(ios, cli_actor)

    _set_keys(settings, f"{new_key},{old_key}")
    with commit():
        result = services.rekey(batch_size=3)  # several batches
    assert (result.total, result.rekeyed, result.failed) == (4, 4, [])
    key_ids = {t.split(":")[1] for t in PlatformSecret.objects.values_list("ciphertext", flat=True)}
    assert key_ids == {_key_id(new_key)}

    _set_keys(settings, [new_key])
    for platform in (ios, web):
        assert services.reveal_secret(platform, cli_actor) == current[platform.pk]
        assert _verifies(platform, current[platform.pk])
        assert _verifies(platform, previous[platform.pk])
        assert _start(platform, {"userId": "7", "signed": sign(current[platform.pk], "7")}).trusted
    assert services.sign_for("acme", "web", "7") == sign(current[web.pk], "7")

    again = services.rekey()
    assert (again.total, again.rekeyed, again.failed) == (4, 0, [])


def test_rekey_reports_undecryptable_rows_without_changing_them(settings, space, cli_actor):
    old_key, new_key, lost_key = generate_key(), generate_key(), generate_key()
    _set_keys(settings, old_key)
    ios = PlatformFactory(space=space, kind="ios")
    web = PlatformFactory(space=space, kind="web")
    roku = PlatformFactory(space=space, kind="roku")
    roku_secret = _secret(roku, cli_actor)
    # web's row now holds ios's ciphertext (bound to ios); roku's row a lost key's token.
    _current_rows(web).update(ciphertext=_current_rows(ios).get().ciphertext)
    lost_token = KeyRing([lost_key]).encrypt(roku_secret, PlatformSecret.associated_data(roku.pk))
    _current_rows(roku).update(ciphertext=lost_token)
    before = dict(PlatformSecret.objects.values_list("pk", "ciphertext"))

    _set_keys(settings, f"{new_key},{old_key}")
    result = services.rekey()
    assert result.total == 3 and result.rekeyed == 1
    failed = {(pk, platform_id) for pk, platform_id, _reason in result.failed}
    web_row, roku_row = _current_rows(web).get(), _current_rows(roku).get()
    assert failed == {(web_row.pk, web.pk), (roku_row.pk, roku.pk)}
    reasons = " ".join(reason for *_ids, reason in result.failed)
    assert _key_id(lost_key) in reasons
    assert roku_secret not in reasons
    # The failed rows are untouched, the good one moved to the new key.
    assert web_row.ciphertext == before[web_row.pk]
    assert roku_row.ciphertext == before[roku_row.pk]
    assert _current_rows(ios).get().ciphertext.split(":")[1] == _key_id(new_key)
    assert services.rekey().rekeyed == 0


# -------------------------------------------------------- figures, counting


def test_status_figures_match_the_recorded_counts(platform, other_platform, cli_actor, commit):
    secret = _secret(platform, cli_actor)
    for user_id in ("a", "b", "c"):
        _start(platform, {"userId": user_id, "signed": sign(secret, user_id)})
    _start(platform, {"userId": "d", "signed": sign(secret, "not-d")})
    _start(platform, {"userId": "e"})
    _start(platform, {"userId": "f"})
    for _ in range(4):
        _start(platform, {})
    with commit():
        services.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    with pytest.raises(SignatureRequired):
        _start(platform, {"userId": "g"})

    (space_status,) = services.status("acme")
    by_kind = {p["kind"]: p for p in space_status["platforms"]}
    figures = by_kind["ios"]
    recorded = _counts(platform)
    assert recorded == {"valid": 3, "invalid": 1, "missing": 2, "visitor": 4, "rejected": 1}
    for outcome, count in recorded.items():
        assert figures[outcome] == count
    assert figures["identified"] == 7
    assert figures["valid_share"] == pytest.approx(3 / 7, abs=1e-6)
    assert figures["enforced"] is True and figures["ready"] is False
    assert figures["api_key"] == platform.api_key
    assert by_kind["android"]["valid"] == 0 and by_kind["android"]["valid_share"] is None
    assert [s["slug"] for s in services.status()] == ["acme"]
    with pytest.raises(SpaceNotFound):
        services.status("nope")


def test_record_outcome_increments_one_hourly_row(platform):
    hour = datetime(2024, 5, 6, 10, tzinfo=dt_timezone.utc)
    services.record_outcome(platform.pk, "valid", at=hour + timedelta(minutes=5))
    services.record_outcome(platform.pk, "valid", at=hour + timedelta(minutes=55, seconds=59))
    services.record_outcome(platform.pk, "valid", count=3, at=hour + timedelta(minutes=30))
    services.record_outcome(platform.pk, "invalid", at=hour + timedelta(minutes=30))
    services.record_outcome(platform.pk, "valid", at=hour + timedelta(hours=1))
    rows = list(
        OutcomeCount.objects.filter(platform=platform)
        .order_by("hour", "outcome")
        .values_list("hour", "outcome", "count")
    )
    assert rows == [
        (hour, "invalid", 1),
        (hour, "valid", 5),
        (hour + timedelta(hours=1), "valid", 1),
    ]


@pytest.mark.parametrize(
    "api_key",
    ["", "tik_unknown", None, "\x00", "tik_" + "a" * 200, 42],
    ids=["empty", "unknown", "none", "nul", "too-long", "not-a-string"],
)
def test_lookup_platform_refuses_unknown_keys(platform, api_key):
    with pytest.raises(InvalidApiKey):
        services.lookup_platform(api_key)
    assert services.lookup_platform(platform.api_key).platform_id == platform.pk


def test_api_keys_are_matched_exactly(platform):
    for near in (platform.api_key.upper(), platform.api_key + " ", platform.api_key[:-1]):
        with pytest.raises(InvalidApiKey):
            services.lookup_platform(near)


def test_deleting_a_platform_stops_lookup_at_once(platform, commit):
    snapshot = services.lookup_platform(platform.api_key)  # warm
    assert services.lookup_platform(platform.api_key) == snapshot
    with commit():
        platform.delete()
    with pytest.raises(InvalidApiKey):
        services.lookup_platform(platform.api_key)


def test_deleting_a_space_stops_lookup_at_once(space, platform, commit):
    services.lookup_platform(platform.api_key)  # warm
    with commit():
        space.delete()
    with pytest.raises(InvalidApiKey):
        services.lookup_platform(platform.api_key)


def test_daily_figures_are_seven_days_oldest_first(platform, other_platform):
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    OutcomeCountFactory(platform=platform, outcome="valid", count=5, hour=this_hour)
    OutcomeCountFactory(
        platform=platform, outcome="invalid", count=2, hour=this_hour - timedelta(days=3)
    )
    OutcomeCountFactory(
        platform=platform, outcome="valid", count=100, hour=this_hour - timedelta(days=10)
    )
    OutcomeCountFactory(platform=other_platform, outcome="missing", count=9, hour=this_hour)

    series = services.daily_figures([platform.pk, other_platform.pk])
    days = [day for day, _figures in series[platform.pk]]
    today = now.astimezone(dt_timezone.utc).date()
    assert days == [today - timedelta(days=offset) for offset in range(6, -1, -1)]
    figures = dict(series[platform.pk])
    assert figures[today].valid == 5
    assert figures[today - timedelta(days=3)].invalid == 2
    assert sum(f.valid for f in figures.values()) == 5  # 10 days ago is outside
    assert dict(series[other_platform.pk])[today].missing == 9
    assert dict(series[other_platform.pk])[today].valid == 0
    assert len(services.daily_figures([platform.pk], days=3)[platform.pk]) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        (" 90s ", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_duration_accepts(text, expected):
    assert services.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["5x", "-1h", "", "100d", "1.5h", "h", "24 h", None])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidRequest):
        services.parse_duration(text)
