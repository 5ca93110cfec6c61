"""The staged move from a secret to public keys (``services.key_sources``, CONTRACT
section 10): ``secret`` / ``both`` / ``public-key``, readiness by distinct users whose
starts used a public-key token (counted end to end), the override with its reason,
the secrets deleted and audited, and reveal, rotation and signing refused after."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from tests.keytoken_helpers import NOW, key_token, private_keys, public_pem_of
from trusted_identity.exceptions import (
    InvalidRequest,
    PermissionDenied,
    PublicKeysOnly,
)
from trusted_identity.models import AuditEvent, PlatformSecret, PolicyChange, PublicKey, Role
from trusted_identity.services import (
    access,
    figures,
    lookup,
    platform_secrets,
    sessions,
    verification,
)
from trusted_identity.services.key_sources import (
    KeysNotReady,
    KeyUsage,
    key_readiness,
    last_key_source_changes,
    set_key_source,
)
from trusted_identity.services.public_keys import add_public_key, expire_public_key
from trusted_identity.signing import sign

from ..factories import MembershipFactory, PlatformFactory, UserFactory

KEYS = private_keys()


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


@pytest.fixture
def keyed(platform, cli_actor):
    """The platform with one ES256 key, kid ``k``."""
    add_public_key(platform, public_pem_of(KEYS["ES256"]), cli_actor, kid="k")
    return platform


@pytest.fixture
def few_users(settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "READINESS_MIN_STARTS": 10}


def token(user_id, kid="k"):
    return key_token(
        KEYS["ES256"], alg="ES256", kid=kid, claims={"sub": user_id, "iat": NOW, "exp": NOW + 600}
    )


def start(platform, user_id, signed):
    return sessions.start_session(
        lookup.lookup_platform(platform.api_key), {"userId": user_id, "signed": signed}
    )


def actions(platform):
    return list(
        AuditEvent.objects.filter(platform=platform).order_by("pk").values_list("action", "message")
    )


def refresh(platform):
    platform.refresh_from_db()
    return platform


# ---------------------------------------------------------------- what each accepts


def test_each_source_accepts_its_forms(keyed, cli_actor):
    secret = platform_secrets.reveal_secret(keyed, cli_actor)
    plain = sign(secret, "u1")
    public = token("u1")
    # secret: a public-key token the keys verify is a form the platform refuses.
    assert start(keyed, "u1", plain).verification.form == "plain"
    refused = start(keyed, "u1", public).verification
    assert (refused.valid, refused.form, refused.reason) == (
        False,
        "public-key",
        "form_not_allowed",
    )
    set_key_source(keyed, "both", cli_actor)
    assert start(keyed, "u1", plain).trusted
    accepted = start(keyed, "u1", public).verification
    key_id = PublicKey.objects.get(platform=keyed, kid="k").pk
    assert (accepted.valid, accepted.form, accepted.key_id) == (True, "public-key", key_id)
    assert accepted.secret_id is None
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="test")
    assert start(keyed, "u1", public).trusted
    gone = start(keyed, "u1", plain).verification
    assert (gone.valid, gone.form, gone.reason) == (False, "plain", "no_match")


def test_a_platform_without_keys_treats_a_long_token_as_before(platform, cli_actor):
    """No public key and the secret only: a public-key token is what it always was on
    such a platform, a token the HS256 check refuses."""
    result = start(platform, "u1", token("u1")).verification
    assert (result.form, result.reason) == ("token", "token_malformed")


def test_a_text_without_a_tokens_two_dots_is_the_plain_forms_on_every_platform(platform, cli_actor):
    """One dot or three: not a token, whatever it looks like, so the plain form's
    malformed signature (never ``token`` or ``public-key``), on a platform of the secret
    alone and on one taking public keys; a real token beside them still verifies."""
    plain = sign(platform_secrets.reveal_secret(platform, cli_actor), "u1")
    public = token("u1")
    head, body, signature = public.split(".")
    texts = [
        "a.b",
        "a.b.c.d",
        plain[:20] + "." + plain[20:],
        f"{head}.{body}{signature}",  # a public-key token's length, one dot
        f"{head}.{body}.{signature}.",
        f"{head}.{body}.{signature[:43]}.{signature[43:]}",
        f"{head}+{body}.{signature[:43]}",  # an HMAC's length after its one dot
    ]
    for source in ("secret", "both"):
        if source == "both":
            add_public_key(platform, public_pem_of(KEYS["ES256"]), cli_actor, kid="k")
            set_key_source(platform, source, cli_actor)
        for signed in texts:
            result = start(platform, "u1", signed).verification
            assert (result.valid, result.form, result.reason) == (False, "plain", "malformed"), (
                source,
                signed,
            )
        assert start(platform, "u1", plain).trusted
    assert start(platform, "u1", public).verification.form == "public-key"
    assert start(platform, "u1", public).trusted


def test_hs256_with_the_public_key_pem_as_secret_is_refused_on_every_source(keyed, cli_actor):
    pem = public_pem_of(KEYS["ES256"]).encode()
    forged = key_token(header={"alg": "HS256", "typ": "JWT"}, hmac_key=pem)
    forged_kid = key_token(header={"alg": "HS256", "typ": "JWT", "kid": "k"}, hmac_key=pem)
    for source in ("secret", "both", "public-key"):
        if source != "secret":
            set_key_source(keyed, source, cli_actor, force=True, reason="t")
        for signed in (forged, forged_kid):
            result = start(keyed, "42", signed)
            assert not result.trusted and result.verification.form == "token", source
            assert result.verification.reason in ("no_match", "token_malformed")


def test_an_hs256_token_on_a_platform_that_holds_no_secret_is_invalid(keyed, cli_actor):
    secret = platform_secrets.reveal_secret(keyed, cli_actor)
    snapshot = lookup.lookup_platform(keyed.api_key)
    issued = verification.sign_token(snapshot, "u1")
    set_key_source(keyed, "both", cli_actor)
    assert start(keyed, "u1", issued.token).verification.reason == "form_not_allowed"  # plain form
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="t")
    result = start(keyed, "u1", issued.token).verification
    assert (result.valid, result.reason) == (False, "no_match")
    assert not start(keyed, "u1", sign(secret, "u1")).trusted


# --------------------------------------------------------------------- staging


def test_both_and_public_key_need_a_key_that_verifies(platform, cli_actor):
    with pytest.raises(InvalidRequest, match="has no public key that verifies: add one first"):
        set_key_source(platform, "both", cli_actor)
    add_public_key(platform, public_pem_of(KEYS["EdDSA"]), cli_actor, kid="e")
    expire_public_key(platform, "e", cli_actor)
    with pytest.raises(InvalidRequest, match="no public key that verifies"):
        set_key_source(platform, "public-key", cli_actor, force=True, reason="r")
    assert refresh(platform).key_source == "secret"
    with pytest.raises(InvalidRequest, match="unknown key source"):
        set_key_source(platform, "keys", cli_actor)


def test_public_key_follows_the_readiness_rule_by_distinct_users(keyed, cli_actor, few_users):
    set_key_source(keyed, "both", cli_actor)
    secret = platform_secrets.reveal_secret(keyed, cli_actor)
    # Ten users, plain; one of them replays a public-key token many times.
    for n in range(10):
        assert start(keyed, f"u{n}", sign(secret, f"u{n}")).trusted
    for _ in range(50):
        assert start(keyed, "u0", token("u0")).trusted
    assert key_readiness(keyed) == KeyUsage(10, 1)
    with pytest.raises(KeysNotReady, match=r"1 of 10 valid identified users \(10\.0%\)") as info:
        set_key_source(keyed, "public-key", cli_actor)
    assert (info.value.status, info.value.code) == (409, "not_ready")
    assert refresh(keyed).key_source == "both"
    assert PlatformSecret.objects.filter(platform=keyed).exists()
    # Every user moves to public-key tokens: ready, no override needed.
    for n in range(10):
        assert start(keyed, f"u{n}", token(f"u{n}")).trusted
    assert key_readiness(keyed).readiness == "ready"
    set_key_source(keyed, "public-key", cli_actor)
    assert refresh(keyed).key_source == "public-key"
    change = last_key_source_changes([keyed.pk])[keyed.pk]
    assert (change.old_value, change.new_value, change.overridden) == ("both", "public-key", False)
    assert (change.readiness, change.readiness_count, change.readiness_share) == ("ready", 10, 1.0)


def test_too_few_users_need_the_override_and_its_reason(keyed, cli_actor):
    with pytest.raises(KeysNotReady, match="not enough starts to tell: 0 valid identified users"):
        set_key_source(keyed, "public-key", cli_actor)
    with pytest.raises(InvalidRequest, match="needs a reason"):
        set_key_source(keyed, "public-key", cli_actor, force=True, reason="  ")
    assert refresh(keyed).key_source == "secret"
    assert not PolicyChange.objects.filter(platform=keyed).exists()
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="all signers moved")
    record = PolicyChange.objects.get(platform=keyed)
    assert (record.setting, record.old_value, record.new_value) == (
        "key_source",
        "secret",
        "public-key",
    )
    assert (record.overridden, record.override_reason) == (True, "all signers moved")
    assert record.readiness == "not_enough_starts"


def test_going_public_key_only_deletes_every_secret_audited(keyed, other_platform, cli_actor):
    platform_secrets.rotate_secret(keyed, cli_actor, timedelta(hours=1))  # a previous one too
    assert PlatformSecret.objects.filter(platform=keyed).count() == 2
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="done")
    assert not PlatformSecret.objects.filter(platform=keyed).exists()
    assert PlatformSecret.objects.filter(platform=other_platform).count() == 1  # not its
    logged = actions(keyed)[-2:]
    assert logged[0] == (
        "key_source",
        "Key source: secret -> public-key. Readiness rule overridden; override reason: done",
    )
    assert logged[1] == (
        "delete_secrets",
        "Deleted the platform's 2 secrets: it verifies public keys only, so nothing stored "
        "here can sign for it.",
    )


def test_a_failure_after_the_deletion_keeps_the_secrets(keyed, cli_actor, monkeypatch):
    """One transaction: the source, the records and the deletion are written together."""
    from trusted_identity.services import key_sources

    def broken():
        raise RuntimeError("the database went away")

    monkeypatch.setattr(key_sources, "verification_changed", broken)
    with pytest.raises(RuntimeError), transaction.atomic():
        set_key_source(keyed, "public-key", cli_actor, force=True, reason="r")
    assert refresh(keyed).key_source == "secret"
    assert PlatformSecret.objects.filter(platform=keyed).count() == 1


def test_reveal_rotation_and_signing_are_refused_once_public_key_only(keyed, cli_actor):
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="r")
    for refused, action in (
        (lambda: platform_secrets.reveal_secret(keyed, cli_actor), "reveal"),
        (lambda: platform_secrets.rotate_secret(keyed, cli_actor), "rotate"),
        (lambda: platform_secrets.revoke_previous(keyed, cli_actor), "end the grace of"),
        (lambda: platform_secrets.rotate_secrets([keyed], cli_actor), "rotate"),
    ):
        with pytest.raises(PublicKeysOnly, match=f"holds no secret to {action}") as info:
            refused()
        assert (info.value.status, info.value.code) == (409, "public_keys_only")
    with pytest.raises(PublicKeysOnly, match="nothing stored here can sign for it"):
        verification.sign_for("acme", "ios", "42")
    assert not PlatformSecret.objects.filter(platform=keyed).exists()
    assert not AuditEvent.objects.filter(platform=keyed, action__in=["reveal", "rotate"]).exists()


def test_a_bulk_rotation_with_a_public_key_platform_rotates_none(keyed, other_platform, cli_actor):
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="r")
    before = set(PlatformSecret.objects.values_list("pk", flat=True))
    with pytest.raises(PublicKeysOnly):
        platform_secrets.rotate_secrets([other_platform, keyed], cli_actor)
    assert set(PlatformSecret.objects.values_list("pk", flat=True)) == before


def test_leaving_public_key_only_makes_a_new_secret(keyed, cli_actor):
    set_key_source(keyed, "public-key", cli_actor, force=True, reason="r")
    set_key_source(keyed, "both", cli_actor)
    assert PlatformSecret.objects.filter(platform=keyed).current().count() == 1
    secret = platform_secrets.reveal_secret(keyed, cli_actor)
    assert start(keyed, "u1", sign(secret, "u1")).trusted
    assert start(keyed, "u1", token("u1")).trusted
    assert actions(keyed)[-2][1] == (
        "Key source: public-key -> both. Made a new current secret: its earlier secrets were "
        "deleted."
    )
    set_key_source(keyed, "secret", cli_actor)  # leaving both needs no rule either
    assert not start(keyed, "u1", token("u1")).trusted


def test_nothing_changed_nothing_written(keyed, cli_actor):
    before = AuditEvent.objects.count()
    assert set_key_source(keyed, "secret", cli_actor).key_source == "secret"
    assert AuditEvent.objects.count() == before


def test_who_may_change_the_key_source(keyed):
    viewer = UserFactory(username="vic")
    MembershipFactory(space=keyed.space, user=viewer, role=Role.VIEWER)
    with pytest.raises(PermissionDenied):
        set_key_source(keyed, "both", access.Actor.admin(viewer))
    owner = UserFactory(username="olga")
    MembershipFactory(space=keyed.space, user=owner, role=Role.OWNER)
    set_key_source(keyed, "both", access.Actor.admin(owner))
    assert last_key_source_changes([keyed.pk])[keyed.pk].actor_name == "olga"


def test_the_status_says_the_source_and_counts_the_public_key_form(keyed, cli_actor):
    from trusted_identity.services import diagnostics

    set_key_source(keyed, "both", cli_actor)
    start(keyed, "u1", token("u1"))
    start(keyed, "u1", token("u1", kid="nope"))
    other = PlatformFactory(space=keyed.space, kind="web")
    (space,) = diagnostics.status("acme")
    ios = next(p for p in space["platforms"] if p["kind"] == "ios")
    assert ios["key_source"] == "both"
    assert ios["forms"]["public-key"] == {"valid": 1, "invalid": 1, "rejected": 0}
    assert ios["reasons"]["unknown_key"] == 1 and ios["reasons"]["key_expired"] == 0
    web = next(p for p in space["platforms"] if p["kind"] == other.kind)
    assert web["key_source"] == "secret"
    assert web["forms"]["public-key"] == {"valid": 0, "invalid": 0, "rejected": 0}  # listed
    assert ios["distinct"]["forms"] == {"token": 0, "public-key": 1}
    assert web["distinct"]["forms"] == {"token": 0, "public-key": 0}
    assert figures.readiness(keyed).distinct_valid == 1
