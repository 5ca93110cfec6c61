"""A platform's public keys (``services.public_keys``, CONTRACT section 10): added,
expired and removed audited and honoured at once; refused with a message and nothing
stored; listed with fingerprints and their use, counted through the one counting path."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.keytoken_helpers import NOW, key_token, private_keys, public_pem_of
from tests.support import read_generation
from trusted_identity.exceptions import (
    AlreadyExists,
    InvalidRequest,
    KeyNotFound,
    PermissionDenied,
)
from trusted_identity.models import AuditEvent, PublicKey, Role
from trusted_identity.publickeys import parse_public_key
from trusted_identity.services import access, key_sources, lookup, sessions, verification
from trusted_identity.services.public_keys import (
    add_public_key,
    expire_public_key,
    has_public_keys,
    key_usage,
    parse_expiry,
    public_keys_of,
    remove_public_key,
    set_key_expiry,
)

from ..factories import MembershipFactory, PlatformFactory, UserFactory

KEYS = private_keys()
MORE = [private_keys() for _ in range(4)]


def pem(alg="ES256", n=None):
    return public_pem_of((KEYS if n is None else MORE[n])[alg])


def events(platform, action):
    return list(
        AuditEvent.objects.filter(platform=platform, action=action)
        .order_by("pk")
        .values_list("message", flat=True)
    )


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


def verdict(platform, user_id, signed):
    return verification.verify_signed(lookup.lookup_platform(platform.api_key), user_id, signed)


# ---------------------------------------------------------------------- adding


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_key_is_added_by_its_thumbprint_audited(platform, cli_actor, alg):
    generation = read_generation()
    row = add_public_key(platform, pem(alg), cli_actor)
    parsed = parse_public_key(pem(alg))
    assert (row.kid, row.alg, bytes(row.spki)) == (parsed.thumbprint, alg, parsed.spki_der)
    assert (row.added_by, row.added_by_name, row.expires_at) == (None, "trusted-identity-cli", None)
    (message,) = events(platform, "add_public_key")
    assert message == (
        f"Added public key {parsed.thumbprint!r} ({parsed.description}, {alg}, "
        f"{parsed.fingerprint})."
    )
    assert read_generation() == generation + 1  # every process sees it within a second
    assert has_public_keys(platform)


def test_a_jwk_brings_its_kid_and_a_given_kid_wins(platform, cli_actor):
    jwk = {**parse_public_key(pem()).jwk(), "kid": "from-jwk"}
    assert add_public_key(platform, jwk, cli_actor).kid == "from-jwk"
    other = {**parse_public_key(pem("EdDSA")).jwk(), "kid": "ignored"}
    assert add_public_key(platform, json.dumps(other), cli_actor, kid="given").kid == "given"


def test_an_expiry_is_recorded_and_said(platform, cli_actor):
    until = timezone.now() + timedelta(days=30)
    row = add_public_key(platform, pem(), cli_actor, kid="k", expires_at=until)
    assert row.expires_at == until
    assert "; it expires " in events(platform, "add_public_key")[0]
    with pytest.raises(InvalidRequest, match="must be in the future"):
        add_public_key(
            platform, pem("EdDSA"), cli_actor, expires_at=timezone.now() - timedelta(seconds=5)
        )


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (lambda: KEYS["ES256"], "private key"),
        (lambda: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "could not be read"),
        (lambda: {**parse_public_key(pem()).jwk(), "d": "AAAA"}, "private key"),
        (lambda: "junk", "not a public key"),
    ],
)
def test_a_refused_key_stores_nothing_and_changes_nothing(platform, cli_actor, value, match):
    from cryptography.hazmat.primitives import serialization

    given = value()
    if not isinstance(given, (str, dict)):  # a private key object: its PEM
        given = given.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    generation = read_generation()
    with pytest.raises(InvalidRequest, match=match) as refused:
        add_public_key(platform, given, cli_actor)
    assert "\n" not in refused.value.message
    assert not PublicKey.objects.exists()
    assert not AuditEvent.objects.filter(action="add_public_key").exists()
    assert read_generation() == generation


def test_a_fourth_active_key_is_refused(platform, cli_actor):
    for n in range(3):
        add_public_key(platform, pem(n=n), cli_actor, kid=f"k{n}")
    with pytest.raises(InvalidRequest, match="already has 3 active public keys"):
        add_public_key(platform, pem(n=3), cli_actor, kid="k3")
    assert PublicKey.objects.count() == 3
    # An expired one makes room; it is kept (a token naming it is told key_expired).
    expire_public_key(platform, "k0", cli_actor)
    add_public_key(platform, pem(n=3), cli_actor, kid="k3")
    assert sorted(PublicKey.objects.active().values_list("kid", flat=True)) == ["k1", "k2", "k3"]
    assert list(PublicKey.objects.expired().values_list("kid", flat=True)) == ["k0"]
    # Making the expired one verify again would be a fourth.
    with pytest.raises(InvalidRequest, match="before this one verifies again"):
        set_key_expiry(platform, "k0", None, cli_actor)


def test_the_same_kid_or_the_same_key_twice_is_refused(platform, cli_actor):
    add_public_key(platform, pem(), cli_actor, kid="k")
    with pytest.raises(AlreadyExists, match="with kid 'k'"):
        add_public_key(platform, pem("EdDSA"), cli_actor, kid="k")
    with pytest.raises(AlreadyExists, match="already has this public key, as kid 'k'"):
        add_public_key(platform, parse_public_key(pem()).jwk(), cli_actor, kid="other")
    # Another platform may hold the same key and kid.
    other = PlatformFactory(space=platform.space, kind="android")
    assert add_public_key(other, pem(), cli_actor, kid="k").kid == "k"


@pytest.mark.parametrize("kid", ["", "a b", "ü", "x" * 129])
def test_a_bad_kid_is_refused(platform, cli_actor, kid):
    with pytest.raises(InvalidRequest, match="kid"):
        add_public_key(platform, pem(), cli_actor, kid=kid)
    assert not PublicKey.objects.exists()


def test_at_most_ten_keys_are_kept(platform, cli_actor):
    made = [private_keys()["EdDSA"] for _ in range(11)]
    for n, private in enumerate(made[:10]):
        add_public_key(platform, public_pem_of(private), cli_actor, kid=f"k{n}")
        expire_public_key(platform, f"k{n}", cli_actor)
    with pytest.raises(InvalidRequest, match="keeps 10 public keys"):
        add_public_key(platform, public_pem_of(made[10]), cli_actor)


def test_who_may_change_keys(platform):
    viewer = UserFactory(username="vic")
    MembershipFactory(space=platform.space, user=viewer, role=Role.VIEWER)
    admin = UserFactory(username="ada")
    MembershipFactory(space=platform.space, user=admin, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        add_public_key(platform, pem(), access.Actor.admin(viewer))
    row = add_public_key(platform, pem(), access.Actor.admin(admin), kid="k")
    assert (row.added_by, row.added_by_name) == (admin, "ada")
    for change in (
        lambda actor: set_key_expiry(platform, "k", None, actor),
        lambda actor: remove_public_key(platform, "k", actor),
    ):
        with pytest.raises(PermissionDenied):
            change(access.Actor.admin(viewer))
    remove_public_key(platform, "k", access.Actor.admin(admin))


# ------------------------------------------------------ expiring and removing


def test_expiry_and_removal_are_honoured_at_once(platform, cli_actor, frozen, commit):
    with commit():
        add_public_key(platform, pem(), cli_actor, kid="k")
        key_sources.set_key_source(platform, "both", cli_actor)
    token = key_token(KEYS["ES256"], alg="ES256", kid="k")
    assert verdict(platform, "42", token).valid  # the process now holds it, warm
    with commit():
        expire_public_key(platform, "k", cli_actor)
        expire_public_key(platform, "k", cli_actor)  # already expired: nothing changes
    assert verdict(platform, "42", token).reason == "key_expired"
    with commit():
        set_key_expiry(platform, "k", None, cli_actor)
    assert verdict(platform, "42", token).valid
    with commit():
        remove_public_key(platform, "k", cli_actor)
    assert verdict(platform, "42", token).reason == "unknown_key"
    messages = events(platform, "expire_public_key") + events(platform, "remove_public_key")
    assert messages[0] == "Expired public key 'k' now."
    assert messages[1] == "Public key 'k' no longer expires."
    assert messages[2].startswith("Removed public key 'k' (EC P-256, SHA256:")
    assert messages[2].endswith(
        "No public key that verifies is left: public-key tokens are now invalid."
    )
    assert len(messages) == 3


def test_an_expiry_in_the_future_is_judged_by_the_clock(platform, cli_actor, monkeypatch):
    add_public_key(platform, pem(), cli_actor, kid="k")
    key_sources.set_key_source(platform, "both", cli_actor)
    until = timezone.now() + timedelta(hours=1)
    set_key_expiry(platform, "k", until, cli_actor)
    assert events(platform, "expire_public_key") == [
        f"Public key 'k' expires {until:%Y-%m-%d %H:%M} UTC."
    ]
    now = timezone.now().timestamp()
    token = key_token(
        KEYS["ES256"], alg="ES256", kid="k", claims={"sub": "42", "iat": now, "exp": now + 7000}
    )
    monkeypatch.setattr(verification, "clock", lambda: now + 60)
    assert verdict(platform, "42", token).valid
    monkeypatch.setattr(verification, "clock", lambda: until.timestamp())  # no lookup between
    assert verdict(platform, "42", token).reason == "key_expired"


def test_an_unknown_kid_is_a_clear_error(platform, cli_actor):
    with pytest.raises(KeyNotFound, match="acme/ios has no public key with kid 'nope'") as info:
        remove_public_key(platform, "nope", cli_actor)
    assert (info.value.status, info.value.code) == (404, "key_not_found")
    with pytest.raises(KeyNotFound):
        set_key_expiry(platform, "nope", None, cli_actor)


def test_parse_expiry():
    assert parse_expiry("30d") == timedelta(days=30)
    for text, match in (("0", "in the future"), ("5", "needs a unit"), ("4000d", "maximum")):
        with pytest.raises(InvalidRequest, match=match):
            parse_expiry(text)


# ------------------------------------------------------------ listing and use


def test_keys_are_listed_with_fingerprints_and_their_use(platform, cli_actor, frozen):
    add_public_key(platform, pem(), cli_actor, kid="ec")
    add_public_key(platform, pem("RS256"), cli_actor, kid="rsa")
    key_sources.set_key_source(platform, "both", cli_actor)
    snapshot = lookup.lookup_platform(platform.api_key)
    for user in ("a", "b", "c"):
        claims = {"sub": user, "iat": NOW, "exp": NOW + 600}
        signed = key_token(KEYS["ES256"], alg="ES256", kid="ec", claims=claims)
        assert sessions.start_session(snapshot, {"userId": user, "signed": signed}).trusted
    ec, rsa_key = public_keys_of(platform)
    assert (ec.kid, ec.description, ec.verified_last_24h) == ("ec", "EC P-256", 3)
    assert ec.fingerprint == parse_public_key(pem()).fingerprint
    assert ec.last_verified_at is not None and ec.state == "in_use" and not ec.safe_to_remove
    assert (rsa_key.description, rsa_key.verified_last_24h) == ("RSA 2,048 bits", 0)
    assert rsa_key.last_verified_at is None and rsa_key.safe_to_remove
    assert rsa_key.as_dict()["state"] == "unused"
    assert set(ec.as_dict()) == {
        "kid", "alg", "key", "fingerprint", "thumbprint", "added_at", "added_by", "expires_at",
        "state", "last_verified_at", "verified_last_24h", "safe_to_remove",
    }  # fmt: skip
    both = key_usage([platform.pk, 999])
    assert [k.kid for k in both[platform.pk]] == ["ec", "rsa"] and both[999] == []
    # An hour and more later nothing used it: safe to remove.
    later = ec.__class__(**{**ec.__dict__, "now": ec.now + timedelta(hours=1, seconds=1)})
    assert later.safe_to_remove and later.state == "unused"
