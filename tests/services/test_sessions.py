"""Session start: the decision matrix, parsing, vectors through the whole path.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

from datetime import timedelta

import pytest

from trusted_identity.exceptions import (
    InvalidRequest,
    SignatureInvalid,
    SignatureRequired,
)
from trusted_identity.models import (
    PlatformSecret,
)
from trusted_identity.services import enforcement, lookup, platform_secrets, sessions, verification
from trusted_identity.signing import sign

from .helpers import USER_ID, _counts, _current_rows, _secret, _start


def test_enforced_session_start_accepts_a_secret_in_grace(platform, cli_actor, commit):
    enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    old = _secret(platform, cli_actor)
    payload = {"userId": USER_ID, "signed": sign(old, USER_ID)}
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor)
    assert _start(platform, payload).trusted
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(0))
    # Grace 0 revokes every earlier secret: the first one's own grace ended too.
    with pytest.raises(SignatureInvalid):
        _start(platform, payload)
    second = PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False)
    second = second.order_by("-created_at").first().get_secret()
    with pytest.raises(SignatureInvalid):
        _start(platform, {"userId": USER_ID, "signed": sign(second, USER_ID)})
    assert _counts(platform) == {"valid": 1, "rejected": 2}


def test_node_vectors_verify_through_session_start(platform, node_vectors, commit):
    """A secret stored like any other (encrypted) checks what Node signed, end to end."""
    row = _current_rows(platform).get()
    for vector in node_vectors:
        row.set_secret(vector["secret"])
        with commit():
            row.save(update_fields=["ciphertext"])
            lookup.verification_changed()
        result = _start(platform, {"userId": vector["userId"], "signed": vector["signed"]})
        assert result.trusted, vector["userId"]
        assert result.user_id == vector["userId"]
        assert verification.sign_for("acme", "ios", vector["userId"]) == vector["signed"]
    assert _counts(platform) == {"valid": len(node_vectors)}


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
        enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
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
        sessions.parse_session_request(payload)
    with pytest.raises(InvalidRequest):
        _start(platform, payload)
    assert _counts(platform) == {}


def test_parse_session_request_accepts_the_edges():
    assert sessions.parse_session_request({}) == (None, None)
    assert sessions.parse_session_request({"userId": None, "signed": None}) == (None, None)
    assert sessions.parse_session_request({"userId": "u", "signed": ""}) == ("u", None)
    longest = "x" * 1024
    assert sessions.parse_session_request({"userId": longest}) == (longest, None)
    assert sessions.parse_session_request({"userId": " 42 "}) == (" 42 ", None)
