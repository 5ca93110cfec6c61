"""End to end: a Node.js client signs with crypto.createHmac and talks HTTP to a live server.

This is the check a customer's stack does: nothing Python computes the
signatures here.
"""

import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from trusted_identity.models import Platform
from trusted_identity.services import (
    access,
    diagnostics,
    enforcement,
    platform_secrets,
    verification,
)

from .factories import PlatformFactory, SpaceFactory

CLIENT = Path(__file__).resolve().parent / "node" / "client.mjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

USER_IDS = [
    "42",
    " 42",
    "42 ",
    "USER-1",
    "olivia@example.com",
    "a user with spaces",
    "Ünïcödé-用户-🚀",
]


def run_client(base_url, steps):
    completed = subprocess.run(
        [NODE, str(CLIENT)],
        input=json.dumps({"baseUrl": base_url, "steps": steps}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {r["name"]: r for r in json.loads(completed.stdout)}


@pytest.fixture
def live_platforms(live_server, transactional_db):
    space = SpaceFactory(slug="live")
    ios = PlatformFactory(space=space, kind="ios")
    web = PlatformFactory(space=space, kind="web")
    actor = access.get_cli_actor()
    return {
        "url": live_server.url,
        "ios": ios,
        "web": web,
        "ios_secret": platform_secrets.reveal_secret(ios, actor),
        "web_secret": platform_secrets.reveal_secret(web, actor),
        "actor": actor,
    }


def test_node_signatures_are_accepted_for_every_kind_of_user_id(live_platforms):
    p = live_platforms
    steps = [
        {"name": uid, "apiKey": p["ios"].api_key, "userId": uid, "signWith": p["ios_secret"]}
        for uid in USER_IDS
    ]
    results = run_client(p["url"], steps)
    for uid in USER_IDS:
        result = results[uid]
        assert result["status"] == 201, result
        assert result["contentType"].startswith("application/json")
        assert result["body"]["userId"] == uid
        assert result["body"]["trusted"] is True
        assert result["body"]["signature"] == "valid"
        assert result["signed"] == verification.sign_for("live", "ios", uid)


def test_node_client_sees_the_contract_answers_with_enforcement_off_then_on(live_platforms):
    p = live_platforms
    key, secret = p["ios"].api_key, p["ios_secret"]
    steps = [
        {"name": "valid", "apiKey": key, "userId": "u1", "signWith": secret},
        {"name": "upper", "apiKey": key, "userId": "u1", "signWith": secret, "upper": True},
        {"name": "invalid", "apiKey": key, "userId": "u1", "signWith": "not-the-secret"},
        {"name": "other-platform", "apiKey": key, "userId": "u1", "signWith": p["web_secret"]},
        {"name": "missing", "apiKey": key, "userId": "u1"},
        {"name": "visitor", "apiKey": key},
        {"name": "bad-key", "apiKey": "tik_nope"},
    ]
    off = run_client(p["url"], steps)
    assert [
        off[n]["body"]["signature"]
        for n in ("valid", "upper", "invalid", "other-platform", "missing", "visitor")
    ] == ["valid", "valid", "invalid", "invalid", "missing", "none"]
    assert all(off[n]["status"] == 201 for n in ("valid", "invalid", "missing", "visitor"))
    assert off["visitor"]["body"]["anonymous"] is True
    assert off["bad-key"]["status"] == 401
    assert off["bad-key"]["body"]["error"]["code"] == "invalid_api_key"

    enforcement.set_enforcement(p["ios"], True, p["actor"], force=True, reason="e2e test")
    on = run_client(p["url"], steps)
    assert on["valid"]["status"] == 201 and on["upper"]["status"] == 201
    assert on["invalid"]["status"] == 403
    assert on["invalid"]["body"]["error"]["code"] == "signature_invalid"
    assert on["other-platform"]["body"]["error"]["code"] == "signature_invalid"
    assert on["missing"]["status"] == 403
    assert on["missing"]["body"]["error"]["code"] == "signature_required"
    assert on["visitor"]["status"] == 201

    figures = diagnostics.status("live")[0]["platforms"]
    ios = next(f for f in figures if f["kind"] == "ios")
    # First run: valid x2, invalid x2, missing, visitor; second: valid x2, rejected x3, visitor.
    assert (ios["valid"], ios["invalid"], ios["missing"], ios["visitor"], ios["rejected"]) == (
        4,
        2,
        1,
        2,
        3,
    )


def test_node_client_rotation_with_grace_and_revocation(live_platforms):
    p = live_platforms
    key, old = p["ios"].api_key, p["ios_secret"]
    enforcement.set_enforcement(p["ios"], True, p["actor"], force=True, reason="no traffic yet")
    new = platform_secrets.rotate_secret(p["ios"], p["actor"], timedelta(hours=1))
    steps = [
        {"name": "old", "apiKey": key, "userId": "u2", "signWith": old},
        {"name": "new", "apiKey": key, "userId": "u2", "signWith": new},
    ]
    during_grace = run_client(p["url"], steps)
    assert during_grace["old"]["status"] == 201 and during_grace["new"]["status"] == 201

    newest = platform_secrets.rotate_secret(
        Platform.objects.get(pk=p["ios"].pk), p["actor"], timedelta(0)
    )
    steps.append({"name": "newest", "apiKey": key, "userId": "u2", "signWith": newest})
    after_revocation = run_client(p["url"], steps)
    assert after_revocation["newest"]["status"] == 201
    assert after_revocation["new"]["status"] == 403  # revoked with grace 0
    assert after_revocation["old"]["status"] == 403  # grace 0 ended its 1-hour grace too
