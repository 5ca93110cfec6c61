"""Public-key platforms through the doors (CONTRACT sections 4 and 10): session start with
ES256, EdDSA and RS256 tokens over HTTP on both paths (the Django view and the lean
WSGI path), one public answer for every refusal, changes honoured at once with warm
caches, the verified-token memo, the counts."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trusted_identity.models import PublicKey
from trusted_identity.services import (
    access,
    diagnostics,
    enforcement,
    key_sources,
    public_keys,
    verification,
)
from trusted_identity.signing import sign

from .keytoken_helpers import NOW, key_token, private_keys, public_pem_of
from .test_http import assert_error, assert_json, secret_of, start

pytestmark = pytest.mark.both_paths

KEYS = private_keys()
OTHER = private_keys()
KIDS = {"ES256": "ec", "EdDSA": "ed", "RS256": "rsa"}


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    monkeypatch.setattr(verification, "clock", lambda: NOW)


@pytest.fixture
def keyed(platform, django_capture_on_commit_callbacks):
    """The platform with an ES256, an EdDSA and an RS256 key, accepting the secret too."""
    cli = access.get_cli_actor()
    with django_capture_on_commit_callbacks(execute=True):
        for alg, kid in KIDS.items():
            public_keys.add_public_key(platform, public_pem_of(KEYS[alg]), cli, kid=kid)
        key_sources.set_key_source(platform, "both", cli)
    return platform


def token(alg="ES256", user_id="u-1", **kw):
    kw.setdefault("kid", KIDS.get(alg))
    kw.setdefault("claims", {"sub": user_id, "iat": NOW - 10, "exp": NOW + 600})
    return key_token(kw.pop("private", KEYS.get(alg)), alg=alg, **kw)


def public_key_only(platform, commit, enforced=False):
    cli = access.get_cli_actor()
    with commit(execute=True):
        key_sources.set_key_source(platform, "public-key", cli, force=True, reason="test")
        if enforced:
            enforcement.set_enforcement(platform, True, cli, force=True, reason="test")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_public_key_token_starts_a_trusted_session(client, keyed, alg):
    body = assert_json(start(client, keyed.api_key, {"userId": "u-1", "signed": token(alg)}))
    assert (body["trusted"], body["signature"], body["userId"]) == (True, "valid", "u-1")
    # The secret's form still verifies while the platform takes both.
    plain = sign(secret_of(keyed), "u-1")
    assert assert_json(start(client, keyed.api_key, {"userId": "u-1", "signed": plain}))["trusted"]
    # Without a kid, among three keys, nobody guesses which.
    no_kid = token(alg, kid=None)
    assert (
        assert_json(start(client, keyed.api_key, {"userId": "u-1", "signed": no_kid}))["signature"]
        == "invalid"
    )


def tampered_signature(token: str) -> str:
    """``token`` with one character of its signature changed, ten from the end: a full
    six bits of the signature, so the base64url stays canonical and only the signature
    fails (a change in the last character can leave it non-canonical: malformed)."""
    i = len(token) - 10
    return token[:i] + ("B" if token[i] != "B" else "C") + token[i + 1 :]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_public_key_only_and_enforced_refuses_with_one_answer(
    client, keyed, alg, django_capture_on_commit_callbacks
):
    public_key_only(keyed, django_capture_on_commit_callbacks, enforced=True)
    good = token(alg)
    created = assert_json(start(client, keyed.api_key, {"userId": "u-1", "signed": good}))
    assert created["trusted"] is True
    pem = public_pem_of(KEYS[alg]).encode()
    other_type = {"ES256": "EdDSA", "EdDSA": "RS256", "RS256": "ES256"}[alg]
    bodies = set()
    for signed in (
        token(alg, user_id="u-2"),  # another user's
        token(alg, private=OTHER[alg]),  # another key, this kid
        token(alg, kid="nope"),  # unknown kid
        token(other_type, kid=KIDS[alg]),  # a key of the wrong type for the alg
        token(alg, private=None, header={"alg": "none", "typ": "JWT"}),  # alg none, unsigned
        key_token(header={"alg": "HS256", "typ": "JWT", "kid": KIDS[alg]}, hmac_key=pem),
        token("ES256", how="der"),  # ES256 with a DER signature
        sign("not-a-secret", "u-1"),  # the plain form, with no secret to match
        tampered_signature(good),
    ):
        response = start(client, keyed.api_key, {"userId": "u-1", "signed": signed})
        assert_error(response, 403, "signature_invalid")
        bodies.add(response.content)
    assert len(bodies) == 1  # the same words for every reason: no oracle
    reasons = diagnostics.reasons_for([keyed.pk])[keyed.pk]
    # HS256 over the PEM finds no secret to match; a wrong type, none, DER are malformed.
    assert reasons["no_match"] >= 3 and reasons["unknown_key"] == 1
    assert reasons["token_malformed"] == 3 and reasons["token_subject_mismatch"] == 1


def test_a_secret_only_platform_counts_a_public_key_token_as_a_refused_form(
    client, platform, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.add_public_key(
            platform, public_pem_of(KEYS["ES256"]), access.get_cli_actor(), kid="ec"
        )
    body = assert_json(start(client, platform.api_key, {"userId": "u-1", "signed": token()}))
    assert (body["trusted"], body["signature"]) == (False, "invalid")
    forms = diagnostics.forms_for([platform.pk])[platform.pk]
    assert forms["public-key"] == {"valid": 0, "invalid": 1, "rejected": 0}
    assert diagnostics.reasons_for([platform.pk])[platform.pk]["form_not_allowed"] == 1


def test_key_changes_reach_a_warm_process_at_once(
    client, keyed, django_capture_on_commit_callbacks
):
    body = {"userId": "u-1", "signed": token()}
    assert assert_json(start(client, keyed.api_key, body))["trusted"]
    cli = access.get_cli_actor()
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.expire_public_key(keyed, "ec", cli)
    assert assert_json(start(client, keyed.api_key, body))["signature"] == "invalid"
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.set_key_expiry(keyed, "ec", None, cli)
    assert assert_json(start(client, keyed.api_key, body))["trusted"]
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.remove_public_key(keyed, "ec", cli)
    assert assert_json(start(client, keyed.api_key, body))["signature"] == "invalid"
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.add_public_key(keyed, public_pem_of(KEYS["ES256"]), cli, kid="ec")
    assert assert_json(start(client, keyed.api_key, body))["trusted"]
    reasons = diagnostics.reasons_for([keyed.pk])[keyed.pk]
    assert (reasons["key_expired"], reasons["unknown_key"]) == (1, 1)


def test_a_warm_public_key_token_start_reads_nothing(client, keyed, counts_as_served):
    body = {"userId": "u-1", "signed": token("RS256")}
    assert start(client, keyed.api_key, body).status_code == 201
    fresh = {"userId": "u-1", "signed": token("EdDSA")}  # first sight, keys already parsed
    with CaptureQueriesContext(connection) as queries:
        assert assert_json(start(client, keyed.api_key, body))["trusted"]
        assert assert_json(start(client, keyed.api_key, fresh))["trusted"]
    assert queries.captured_queries == []
    used = {k.kid: k.verified_last_24h for k in public_keys.public_keys_of(keyed)}
    assert used == {"ec": 0, "ed": 1, "rsa": 2}  # the read writes what was buffered first


def test_the_memo_serves_a_token_again_only_under_its_key(client, keyed, monkeypatch):
    from trusted_identity import runtime

    body = {"userId": "u-1", "signed": token()}
    assert assert_json(start(client, keyed.api_key, body))["trusted"]
    assert body["signed"] in runtime.current().tokens.verified
    calls = []
    real = type(runtime.current().tokens.verified_by[body["signed"]]).verify
    monkeypatch.setattr(
        type(runtime.current().tokens.verified_by[body["signed"]]),
        "verify",
        lambda self, *a: calls.append(self.kid) or real(self, *a),
    )
    assert assert_json(start(client, keyed.api_key, body))["trusted"]
    assert calls == []  # remembered: no signature check the second time
    assert (
        assert_json(start(client, keyed.api_key, {**body, "userId": "u-2"}))["signature"]
        == "invalid"
    )


def test_a_4096_bit_rsa_key_fits(client, keyed, django_capture_on_commit_callbacks):
    big = rsa.generate_private_key(65537, 4096)
    with django_capture_on_commit_callbacks(execute=True):
        public_keys.remove_public_key(keyed, "rsa", access.get_cli_actor())
        public_keys.add_public_key(keyed, public_pem_of(big), access.get_cli_actor(), kid="big")
    signed = token("RS256", private=big, kid="big")
    assert len(signed.rsplit(".", 1)[1]) == 683  # 512 bytes
    assert assert_json(start(client, keyed.api_key, {"userId": "u-1", "signed": signed}))["trusted"]


def test_the_counts_name_the_form_and_the_key(client, keyed):
    for user in ("a", "b"):
        start(client, keyed.api_key, {"userId": user, "signed": token("EdDSA", user_id=user)})
    start(client, keyed.api_key, {"userId": "a", "signed": token("EdDSA", user_id="b")})
    forms = diagnostics.forms_for([keyed.pk])[keyed.pk]
    assert forms["public-key"] == {"valid": 2, "invalid": 1, "rejected": 0}
    assert diagnostics.reasons_for([keyed.pk])[keyed.pk]["token_subject_mismatch"] == 1
    ed = PublicKey.objects.get(platform=keyed, kid="ed")
    assert ed.last_verified_at is not None
    usage = key_sources.key_readiness(keyed)
    assert (usage.valid, usage.public_key) == (2, 2)


def test_the_sign_view_says_why_it_cant_sign_for_a_public_key_platform(
    client, keyed, django_capture_on_commit_callbacks
):
    """Nothing stored here can sign for a public-key-only platform: the site's sign view
    answers the contract's JSON error saying so, never a 500."""
    from .factories import UserFactory
    from .test_http import SIGN

    public_key_only(keyed, django_capture_on_commit_callbacks)
    client.force_login(UserFactory(username="alice", is_staff=False))
    body = assert_error(
        client.get(SIGN, {"platform": "ios", "space": "acme"}), 409, "public_keys_only"
    )
    assert "verifies public keys only" in body["error"]["message"]
