"""``test-signature`` (CONTRACT sections 5 and 8): one verdict word on stdout, ``--json``
with the secret, its end of grace and the bytes hashed; errors on one line; every test
audited with the user id, never the signature; rate-limited per actor.
"""

import json
import time
from datetime import datetime, timedelta
from io import StringIO

import jwt
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from trusted_identity.models import PlatformSecret, Role
from trusted_identity.publickeys import parse_public_key
from trusted_identity.services import key_sources, platform_secrets, public_keys, signature_forms
from trusted_identity.signing import sign

from .factories import MembershipFactory, PlatformFactory, UserFactory
from .keytoken_helpers import key_token, private_keys, public_pem_of
from .services.helpers import _audit_events
from .support import wait_out_window_edge
from .test_cli import fails, value_of

USER_ID = "user-42"
KEYS = private_keys()


@pytest.fixture
def ios(space):
    return PlatformFactory(space=space, kind="ios")


@pytest.fixture
def android(space):
    return PlatformFactory(space=space, kind="android")


def secret_of(platform):
    return platform_secrets.current_secret_row(platform).get_secret()


#: The exit status of each verdict (docs/cli.md).
EXIT_CODES = {
    "valid-current": 0,
    "valid-previous": 0,
    "no-match": 3,
    "malformed": 4,
    "expired-secret": 5,
    "other-platform": 6,
}


def run_tester(*args):
    """(stdout, stderr, exit status) of ``test-signature``: a verdict other than valid
    ends in a CommandError whose returncode is the exit status."""
    out, err = StringIO(), StringIO()
    try:
        call_command("trusted_identity", *args, stdout=out, stderr=err)
    except CommandError as exc:
        assert "\n" not in str(exc)
        return out.getvalue(), err.getvalue(), exc.returncode
    return out.getvalue(), err.getvalue(), 0


def verdict(*args):
    out, err, code = run_tester("test-signature", "acme", "ios", *args)
    word = value_of(out)
    assert code == EXIT_CODES[word], (word, code)
    return word, err


def as_json(*args):
    out, _, code = run_tester("test-signature", "acme", "ios", *args, "--json")
    found = json.loads(value_of(out))
    assert code == EXIT_CODES[found["verdict"]]
    return found


def token_for(secret, user_id=USER_ID, iat=None, lifetime=600):
    iat = int(time.time()) if iat is None else iat
    return jwt.encode({"sub": user_id, "iat": iat, "exp": iat + lifetime}, secret, "HS256")


def test_valid_current(ios):
    word, err = verdict(USER_ID, sign(secret_of(ios), USER_ID))
    assert word == "valid-current"
    assert "Signed with the current secret of" in err and "#" not in err
    assert USER_ID.encode().hex() in err


def test_valid_previous_with_its_end_of_grace(ios, cli_actor):
    old = secret_of(ios)
    (old_id,) = PlatformSecret.objects.filter(platform=ios).values_list("pk", flat=True)
    platform_secrets.rotate_secret(ios, cli_actor, timedelta(hours=2))
    assert verdict(USER_ID, sign(old, USER_ID))[0] == "valid-previous"
    found = as_json(USER_ID, sign(old, USER_ID))
    assert found["verdict"] == "valid-previous" and found["accepted"] is True
    assert found["secret"]["id"] == old_id
    assert found["secret"]["state"] == "previous" and found["secret"]["platform"] == "ios"
    grace_end = datetime.fromisoformat(found["grace_end"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < grace_end - timezone.now() <= timedelta(hours=2)
    assert found["secret"]["created_at"].endswith("Z")


def test_expired_secret(ios, cli_actor):
    old = secret_of(ios)
    platform_secrets.rotate_secret(ios, cli_actor, timedelta(0))
    assert verdict(USER_ID, sign(old, USER_ID))[0] == "expired-secret"
    found = as_json(USER_ID, sign(old, USER_ID))
    assert (found["accepted"], found["reason"], found["secret"]["state"]) == (
        False,
        "expired_secret",
        "expired",
    )
    assert found["grace_end"] is not None


def test_other_platform(ios, android):
    signed = sign(secret_of(android), USER_ID)
    assert verdict(USER_ID, signed)[0] == "other-platform"
    found = as_json(USER_ID, signed)
    assert found["secret"]["platform"] == "android"
    assert found["secret"]["state"] == "other_platform"
    assert found["grace_end"] is None and found["reason"] == "other_platform"


@pytest.mark.parametrize("signed", ["zz", "0" * 63, "g" * 64, "a.b.c", "a.b"])
def test_malformed(ios, signed):
    assert verdict(USER_ID, signed)[0] == "malformed"


def test_no_match_shows_the_bytes_hashed(ios):
    user_id = "café 42"  # a space and a precomposed é: the bytes say which
    found = as_json(user_id, sign(secret_of(ios), "cafe\u0301 42"))
    assert found["verdict"] == "no-match" and found["secret"] is None
    assert found["bytes_hex"] == user_id.encode("utf-8").hex() == "636166c3a9203432"
    assert found["bytes_length"] == 8
    assert (found["form"], found["reason"]) == ("plain", "no_match")


def test_tokens(ios, android, cli_actor):
    signature_forms.set_signature_form(ios, "either", cli_actor)
    current = token_for(secret_of(ios))
    found = as_json(USER_ID, current)
    assert (found["verdict"], found["form"], found["accepted"]) == ("valid-current", "token", True)
    assert bytes.fromhex(found["bytes_hex"]).decode() == current.rsplit(".", 1)[0]
    expired = token_for(secret_of(ios), iat=int(time.time()) - 7200)
    found = as_json(USER_ID, expired)
    assert (found["verdict"], found["token_reason"]) == ("valid-current", "token_expired")
    assert found["accepted"] is False
    assert verdict(USER_ID, token_for(secret_of(android)))[0] == "other-platform"


def test_a_form_the_platform_refuses_still_names_the_secret(ios):
    found = as_json(USER_ID, token_for(secret_of(ios)))  # the platform takes plain only
    assert (found["verdict"], found["accepted"], found["reason"]) == (
        "valid-current",
        False,
        "form_not_allowed",
    )


def test_every_test_is_audited_with_the_user_id_never_the_signature(ios):
    signed = sign(secret_of(ios), USER_ID)
    verdict(USER_ID, signed)
    entry = _audit_events(ios).last()
    assert USER_ID in entry.message and "valid-current" in entry.message
    assert signed not in entry.message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "ios", USER_ID, "0" * 64), "space"),
        (("acme", "roku", USER_ID, "0" * 64), "roku"),
        (("acme", "phone", USER_ID, "0" * 64), "phone"),
        (("acme", "ios", "", "0" * 64), "user id must not be empty"),
        (("acme", "ios", USER_ID, ""), "signature must not be empty"),
        (("acme", "ios", "x" * 2000, "0" * 64), "longer than"),
        (("acme", "ios", USER_ID, "0" * 300), "too long"),
    ],
)
def test_bad_input_fails_on_one_line(ios, args, message):
    fails("test-signature", *args, match=message)
    assert not _audit_events(ios).filter(message__startswith="Tested").exists()


def test_actor_needs_the_reveal_role(ios, space):
    vera = UserFactory(username="vera")
    MembershipFactory(space=space, user=vera, role=Role.VIEWER)
    fails(
        "--actor", "vera", "test-signature", "acme", "ios", USER_ID, "0" * 64, match="vera may not"
    )
    ada = UserFactory(username="ada")
    MembershipFactory(space=space, user=ada, role=Role.ADMIN)
    out, _, code = run_tester("--actor", "ada", "test-signature", "acme", "ios", USER_ID, "0" * 64)
    assert (value_of(out), code) == ("no-match", 3)
    assert _audit_events(ios).last().actor == ada


def test_rate_limited_per_actor(ios, settings):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "TESTER_RATE_LIMIT": "2/m"}
    wait_out_window_edge(60)
    for _ in range(2):
        verdict(USER_ID, "0" * 64)
    fails("test-signature", "acme", "ios", USER_ID, "0" * 64, match="too many")


def test_exit_status_is_zero_only_for_a_valid_verdict(ios, android, cli_actor):
    """Scripts can test the verdict by the exit status (docs/cli.md: 0, 3 to 6)."""
    old = secret_of(ios)
    platform_secrets.rotate_secret(ios, cli_actor, timedelta(hours=1))
    cases = {
        "valid-current": sign(secret_of(ios), USER_ID),
        "valid-previous": sign(old, USER_ID),
        "other-platform": sign(secret_of(android), USER_ID),
        "malformed": "zz",
        "no-match": "0" * 64,
    }
    for word, signed in cases.items():
        out, _, code = run_tester("test-signature", "acme", "ios", USER_ID, signed)
        assert (value_of(out), code) == (word, EXIT_CODES[word])
    platform_secrets.revoke_previous(ios, cli_actor)
    out, _, code = run_tester("test-signature", "acme", "ios", USER_ID, sign(old, USER_ID))
    assert (value_of(out), code) == ("expired-secret", 5)


def test_no_match_names_the_id_the_signature_was_made_for(ios):
    signed = sign(secret_of(ios), USER_ID + " ")
    word, err = verdict(USER_ID, signed)
    assert word == "no-match"
    assert "This signature is for the id 'user-42 ' (with a trailing space)" in err
    found = as_json(USER_ID, signed)
    assert found["variant"] == {"user_id": "user-42 ", "change": "with a trailing space"}
    assert as_json(USER_ID, "0" * 64)["variant"] is None
    assert as_json(USER_ID, sign(secret_of(ios), USER_ID))["variant"] is None


# ------------------------------------------------------------ public-key tokens


def key_token_for(private, kid, user_id=USER_ID, alg="ES256"):
    now = int(time.time())
    claims = {"sub": user_id, "iat": now - 5, "exp": now + 600}
    return key_token(private, alg=alg, kid=kid, claims=claims)


@pytest.fixture
def keyed(ios, cli_actor):
    public_keys.add_public_key(ios, public_pem_of(KEYS["EdDSA"]), cli_actor, kid="ed-1")
    key_sources.set_key_source(ios, "both", cli_actor)
    return ios


def test_a_public_key_token_names_the_key_that_verified_it(keyed):
    signed = key_token_for(KEYS["EdDSA"], "ed-1", alg="EdDSA")
    word, err = verdict(USER_ID, signed)
    fingerprint = parse_public_key(public_pem_of(KEYS["EdDSA"])).fingerprint
    assert word == "valid-current"
    assert f"Verified by public key 'ed-1' (Ed25519, EdDSA, {fingerprint}) of acme/ios." in err
    assert "Bytes signed" in err and signed.rsplit(".", 1)[1] not in err
    found = as_json(USER_ID, signed)
    assert (found["form"], found["accepted"], found["secret"]) == ("public-key", True, None)
    assert found["key"] == {
        "kid": "ed-1",
        "alg": "EdDSA",
        "key": "Ed25519",
        "fingerprint": fingerprint,
        "expires_at": None,
        "state": "active",
    }
    assert found["kid"] == "ed-1"


def test_public_key_refusals_exit_with_their_verdict(keyed, cli_actor):
    unknown = key_token_for(KEYS["EdDSA"], "nope", alg="EdDSA")
    word, err = verdict(USER_ID, unknown)
    assert word == "no-match" and "no key has the kid 'nope'" in err
    assert as_json(USER_ID, unknown)["reason"] == "unknown_key"
    confused = key_token_for(KEYS["ES256"], "ed-1")  # ES256 for an Ed25519 key
    assert verdict(USER_ID, confused)[0] == "malformed"
    assert as_json(USER_ID, confused)["reason"] == "token_malformed"
    public_keys.expire_public_key(keyed, "ed-1", cli_actor)
    time.sleep(0.01)
    signed = key_token_for(KEYS["EdDSA"], "ed-1", alg="EdDSA")
    word, err = verdict(USER_ID, signed)
    assert word == "expired-secret" and "which expired" in err
    found = as_json(USER_ID, signed)
    assert (found["reason"], found["key"]["state"]) == ("key_expired", "expired")
    assert found["grace_end"] == found["key"]["expires_at"]
