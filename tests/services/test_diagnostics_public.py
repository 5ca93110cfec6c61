"""The reason of an invalid start is never in the public answer (no oracle): session
start answers every reason alike, on both paths (the Django view and ``LeanSessions``).
"""

import json
import time
from datetime import timedelta

import jwt
import pytest

from trusted_identity.services import (
    enforcement,
    lookup,
    platform_secrets,
    signature_forms,
    verification,
)
from trusted_identity.signing import sign

from .helpers import USER_ID, _secret

pytestmark = pytest.mark.both_paths

SESSIONS = "/trusted-identity/v1/sessions"


def _token(secret):
    now = int(time.time())
    return jwt.encode({"sub": USER_ID, "iat": now, "exp": now + 600}, secret, "HS256")


@pytest.fixture
def forged(platform, other_platform, cli_actor, commit):
    """One ``signed`` per reason, checked to have that reason."""
    signature_forms.set_signature_form(platform, "either", cli_actor)
    theirs, old = _secret(other_platform, cli_actor), _secret(platform, cli_actor)
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    cases = {
        "malformed": "zz",
        "no_match": sign("tis_ios_" + "z" * 48, USER_ID),
        "other_platform": sign(theirs, USER_ID),
        "expired_secret": sign(old, USER_ID),
        "token other_platform": _token(theirs),
        "token expired_secret": _token(old),
    }
    snapshot = lookup.lookup_platform(platform.api_key)
    for name, signed in cases.items():
        assert verification.verify_signed(snapshot, USER_ID, signed).reason == name.split()[-1]
    return cases


def _post(client, platform, signed):
    body = json.dumps({"userId": USER_ID, "signed": signed})
    return client.post(
        SESSIONS, data=body, content_type="application/json", HTTP_X_API_KEY=platform.api_key
    )


def test_not_enforced_every_reason_answers_invalid(client, platform, forged):
    for signed in forged.values():
        response = _post(client, platform, signed)
        assert response.status_code == 201
        answer = response.json()
        del answer["sessionId"]
        assert answer == {
            "anonymous": False,
            "userId": USER_ID,
            "trusted": False,
            "signature": "invalid",
            "space": "acme",
            "platform": "ios",
        }


def test_enforced_every_reason_answers_the_same_403(client, platform, forged, cli_actor, commit):
    with commit():
        enforcement.set_enforcement(platform, True, cli_actor, force=True, reason="test")
    answers = set()
    for signed in forged.values():
        response = _post(client, platform, signed)
        assert response.status_code == 403
        answers.add((response.content, tuple(sorted(response.headers.items()))))
    assert len(answers) == 1
    (content, _headers) = answers.pop()
    assert json.loads(content)["error"]["code"] == "signature_invalid"
