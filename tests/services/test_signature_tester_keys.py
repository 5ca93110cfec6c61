"""The signature tester with public-key tokens (CONTRACT section 10): it words what
verification decides (``verification.explain_signed``): the key that verified a token
(its kid and fingerprint), or the reason a session start at the same moment counts
(``unknown_key``, ``key_expired``, ``no_match``, ``token_malformed`` for algorithm
confusion, ``form_not_allowed`` on a platform that verifies its secret only).
"""

from __future__ import annotations

import json
import time

import pytest

from trusted_identity.services import (
    key_sources,
    lookup,
    public_keys,
    sessions,
    verification,
)
from trusted_identity.services.signature_tester import check_signature

from ..keytoken_helpers import key_token, private_keys, public_pem_of
from .helpers import USER_ID

KEYS = private_keys()
OTHER = private_keys()
KIDS = {"ES256": "ec-1", "EdDSA": "ed-1", "RS256": "rsa-1"}


@pytest.fixture
def clock(monkeypatch):
    """The moment verification judges by: now, as the database says it, movable."""
    moment = {"now": float(int(time.time()))}
    monkeypatch.setattr(verification, "clock", lambda: moment["now"])
    return moment


@pytest.fixture
def keyed(platform, cli_actor, commit):
    with commit():
        for alg, kid in KIDS.items():
            public_keys.add_public_key(platform, public_pem_of(KEYS[alg]), cli_actor, kid=kid)
        key_sources.set_key_source(platform, "both", cli_actor)
    return platform


def token(clock, alg="ES256", user_id=USER_ID, **kw):
    kw.setdefault("kid", KIDS.get(alg))
    now = int(clock["now"])
    kw.setdefault("claims", {"sub": user_id, "iat": now - 10, "exp": now + 600})
    return key_token(kw.pop("private", KEYS.get(alg)), alg=alg, **kw)


def judged(platform, actor, signed, clock):
    """(the tester's verdict, what a session start decided at the same moment)."""
    started = sessions.start_session(
        lookup.lookup_platform(platform.api_key), {"userId": USER_ID, "signed": signed}
    ).verification
    verdict = check_signature(actor, platform, None, USER_ID, signed, now=clock["now"])
    assert verdict.reason == started.reason  # the tester words the one decision
    assert verdict.form == started.form
    return verdict, started


def fingerprints(platform):
    return {key.kid: key.fingerprint for key in public_keys.public_keys_of(platform)}


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_valid_token_names_the_key_that_verified_it(keyed, cli_actor, clock, alg):
    verdict, started = judged(keyed, cli_actor, token(clock, alg), clock)
    assert started.valid and started.form == "public-key"
    assert (verdict.verdict, verdict.accepted, verdict.reason) == ("valid-current", True, None)
    assert verdict.key.kid == KIDS[alg]
    assert verdict.key.alg == alg
    assert verdict.key.key_id == started.key_id  # the very row session start counted
    assert verdict.key.fingerprint == fingerprints(keyed)[KIDS[alg]]
    words = verdict.describe()
    assert f"Verified by public key {KIDS[alg]!r}" in words
    assert verdict.key.fingerprint in words
    assert "Bytes signed" in words
    as_json = verdict.as_json()
    assert as_json["key"]["kid"] == KIDS[alg]
    assert as_json["key"]["state"] == "active"
    assert as_json["secret"] is None
    # What was signed: the token's first two segments, never the whole token anywhere.
    signed = token(clock, alg)
    assert bytes.fromhex(as_json["bytes_hex"]).decode() in signed
    assert signed.rsplit(".", 1)[1] not in json.dumps(as_json) + words


def test_on_a_secret_only_platform_the_key_matches_but_a_start_refuses_it(
    keyed, cli_actor, clock, commit
):
    with commit():
        key_sources.set_key_source(keyed, "secret", cli_actor)
    verdict, _ = judged(keyed, cli_actor, token(clock), clock)
    assert (verdict.verdict, verdict.accepted, verdict.reason) == (
        "valid-current",
        False,
        "form_not_allowed",
    )
    assert verdict.key.kid == "ec-1"
    assert "would still count it invalid: form_not_allowed" in verdict.describe()


def test_an_expired_key_is_named_with_its_expiry(keyed, cli_actor, clock, commit):
    signed = token(clock, "EdDSA")
    with commit():
        row = public_keys.expire_public_key(keyed, "ed-1", cli_actor)
    clock["now"] = row.expires_at.timestamp() + 1
    verdict, _ = judged(keyed, cli_actor, signed, clock)
    assert (verdict.verdict, verdict.reason) == ("expired-secret", "key_expired")
    assert verdict.key.kid == "ed-1" and verdict.key.expired
    assert verdict.grace_end == row.expires_at
    assert verdict.as_json()["key"]["state"] == "expired"
    assert "which expired" in verdict.describe()


def test_an_unknown_kid_and_another_keys_signature_are_no_match(keyed, cli_actor, clock):
    verdict, _ = judged(keyed, cli_actor, token(clock, kid="nope"), clock)
    assert (verdict.verdict, verdict.reason, verdict.key) == ("no-match", "unknown_key", None)
    assert verdict.token_kid == "nope"
    assert "no key has the kid 'nope'" in verdict.describe()
    # No kid among three keys: nobody guesses which.
    verdict, _ = judged(keyed, cli_actor, token(clock, kid=None), clock)
    assert (verdict.reason, verdict.token_kid) == ("unknown_key", None)
    assert "has no kid" in verdict.describe()
    # The kid of a key here, signed by another private key.
    forged = token(clock, private=OTHER["ES256"])
    verdict, _ = judged(keyed, cli_actor, forged, clock)
    assert (verdict.verdict, verdict.reason, verdict.key) == ("no-match", "no_match", None)
    assert "not one of public key 'ec-1'" in verdict.describe()


@pytest.mark.parametrize(
    ("confusion", "expected"),
    [
        ("rsa key for ES256", ("malformed", "token_malformed")),
        ("ES256 as DER", ("malformed", "token_malformed")),
        ("alg none", ("malformed", "token_malformed")),
        ("HS256 with the PEM", ("no-match", "no_match")),  # an HMAC: the secret's form
        ("hostile kid", ("no-match", "unknown_key")),
    ],
)
def test_algorithm_confusion_gets_the_reason_the_decision_gives(
    keyed, cli_actor, clock, confusion, expected
):
    now = int(clock["now"])
    claims = {"sub": USER_ID, "iat": now, "exp": now + 60}
    signed = {
        "rsa key for ES256": key_token(KEYS["ES256"], alg="ES256", kid="rsa-1", claims=claims),
        "ES256 as DER": key_token(KEYS["ES256"], alg="ES256", kid="ec-1", claims=claims, how="der"),
        "alg none": key_token(None, header={"alg": "none", "kid": "ec-1"}, claims=claims),
        "HS256 with the PEM": key_token(
            header={"alg": "HS256", "kid": "ec-1"},
            claims=claims,
            hmac_key=public_pem_of(KEYS["ES256"]).encode(),
        ),
        "hostile kid": key_token(KEYS["ES256"], alg="ES256", kid="\u202e<b>" * 100, claims=claims),
    }[confusion]
    verdict, started = judged(keyed, cli_actor, signed, clock)
    assert not started.valid and not verdict.accepted
    assert (verdict.verdict, verdict.reason) == expected
    assert verdict.key is None
    if verdict.token_kid is not None:  # repeated printable and bounded
        assert "\u202e" not in verdict.token_kid and len(verdict.token_kid) <= 128 * 8


def test_a_tokens_claims_refused_still_name_the_key(keyed, cli_actor, clock):
    now = int(clock["now"])
    expired = token(clock, "RS256", claims={"sub": USER_ID, "iat": now - 600, "exp": now - 120})
    verdict, _ = judged(keyed, cli_actor, expired, clock)
    assert (verdict.verdict, verdict.reason, verdict.token_reason) == (
        "valid-current",
        "token_expired",
        "token_expired",
    )
    assert verdict.key.kid == "rsa-1"
    other_user = token(clock, "ES256", user_id="someone-else")
    verdict, _ = judged(keyed, cli_actor, other_user, clock)
    assert verdict.reason == "token_subject_mismatch" and verdict.key.kid == "ec-1"


def test_a_public_key_only_platform_is_tested_without_a_secret(keyed, cli_actor, clock, commit):
    with commit():
        key_sources.set_key_source(keyed, "public-key", cli_actor, force=True, reason="test")
    verdict, started = judged(keyed, cli_actor, token(clock, "EdDSA"), clock)
    assert started.valid and verdict.verdict == "valid-current" and verdict.key.kid == "ed-1"
    # A plain signature on it: the decision's reason, no secret named.
    verdict, _ = judged(keyed, cli_actor, "a" * 64, clock)
    assert verdict.form == "plain" and verdict.secret_id is None and not verdict.accepted
