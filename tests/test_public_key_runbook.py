"""The move from a secret to public keys (docs/public-keys.md), run as written.

Real processes, as ``tests/test_deployment.py`` runs them: the example project's
settings from environment variables (DEBUG off, a SQLite file), ``manage.py`` for
every command, gunicorn serving. Each block of the page's runbook runs in ``bash``
exactly as written (``$KEYS`` a directory of the test's own); between them the test
does what the page says happens: the site restarted with its key, the signers
deployed (the page's Python example, with the key the runbook made), the users
coming back. At the end nothing stored can sign, and the private key is in no file
the project wrote, no log and no error.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from trusted_identity import signing
from trusted_identity.crypto import generate_key

from .docs_snippets import snippet
from .test_deployment import GUNICORN, REPO, Deployment

pytestmark = [
    pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed"),
    pytest.mark.end_to_end,
]

USERS = [f"user-{n}" for n in range(120)]


def run_block(d: Deployment, name: str, keys: Path, *, then: str = "", ok: bool = True):
    """A runbook block in bash, as written, with ``then`` appended (to read a variable)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{d.env.get('PATH', '/usr/bin:/bin')}"
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + snippet(name) + then],
        cwd=REPO,
        env={**d.env, "KEYS": str(keys), "PATH": path},  # `python` is this environment's
        capture_output=True,
        text=True,
        timeout=180,
    )
    d.errors.append(done.stderr)
    assert (done.returncode == 0) == ok, (name, done.stdout, done.stderr)
    return done


def site_token(d: Deployment, user_id: str, form: str | None = "token") -> str:
    """What ``trusted_identity.sign_user_id`` gives in a process of the site."""
    call = f"trusted_identity.sign_user_id('my-space', 'web', {user_id!r}, form={form!r})"
    return d.manage("shell", "-v", "0", "-c", f"import trusted_identity; print({call})")


def public_key_starts(d: Deployment) -> int:
    [space] = json.loads(d.cli("status", "my-space", "--json"))["spaces"]
    [web] = space["platforms"]
    return web["forms"].get("public-key", {}).get("valid", 0)


def test_the_runbook_moves_a_platform_to_public_keys(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("runbook"))
    keys = tmp_path_factory.mktemp("keys")
    try:
        _the_runbook(d, keys)
    finally:
        d.stop_server()


def _the_runbook(d: Deployment, keys: Path) -> None:
    d.set_keys(generate_key())
    d.env["TRUSTED_IDENTITY_SIGNING_SPACE"] = "my-space"
    d.manage("migrate", "--noinput", "-v0")
    d.cli("create-space", "my-space")
    api_key = d.cli("add-platform", "my-space", "web")
    secret = d.cli("show-secret", "my-space", "web")

    # 1. The key pair; the public half to the platform, its kid printed.
    kid = run_block(d, "pk-move-keys", keys).stdout.split()[-1]
    private = keys / "web-signing.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in private.read_text() and len(kid) == 43  # its thumbprint
    assert kid in d.cli("public-keys", "my-space", "web")

    # 2. The site's key; the check says it will do (the platform is on `secret`).
    done = run_block(d, "pk-move-site", keys, then='\necho "$TRUSTED_IDENTITY_PRIVATE_KEYS"')
    assert "System check identified no issues" in done.stdout
    d.env["TRUSTED_IDENTITY_PRIVATE_KEYS"] = done.stdout.splitlines()[-1]
    assert json.loads(d.env["TRUSTED_IDENTITY_PRIVATE_KEYS"]) == {"my-space/web": str(private)}
    d.start_server()
    signer: dict = {}
    exec(compile(snippet("pk-token-python"), "docs/public-keys.md", "exec"), signer)
    pem = private.read_text()

    def deployed_signer(user_id: str) -> str:
        return signer["sign_user_token"](pem, kid, user_id)

    # Still `secret`: the site signs with the secret, a public-key token is refused.
    assert jwt.get_unverified_header(site_token(d, "42"))["alg"] == "HS256"
    status, answer = d.start_session(api_key, "42", deployed_signer("42"))
    assert (status, answer["trusted"]) == (201, False)
    assert d.start_session(api_key, "plain", signing.sign(secret, "plain"))[1]["trusted"]

    # 3. Both: the site's producers sign with its key at once; the secret still verifies.
    run_block(d, "pk-move-both", keys)
    token = site_token(d, "42")
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "typ": "JWT", "kid": kid}
    assert d.start_session(api_key, "42", token)[1]["trusted"] is True
    assert d.start_session(api_key, "plain", signing.sign(secret, "plain"))[1]["trusted"]
    refused = run_block(d, "pk-move-public-key", keys, ok=False)  # too early: few users
    assert "not enough starts to tell" in refused.stderr

    # The signers are deployed; the users come back.
    for user_id in USERS:
        status, answer = d.start_session(api_key, user_id, deployed_signer(user_id))
        assert (status, answer["trusted"]) == (201, True), answer

    # 4. Watch: the key in use, the starts of each form (written within a second).
    deadline = time.monotonic() + 20
    while public_key_starts(d) < len(USERS) + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    watched = run_block(d, "pk-move-watch", keys).stdout
    assert re.search(rf"^{re.escape(kid)} .* in_use ", watched, re.M)
    assert '"public-key": {"valid": 121' in watched

    # 5. Public keys only: the secrets are deleted, nothing stored can sign.
    done = run_block(d, "pk-move-public-key", keys)
    assert "Its secrets were deleted" in done.stderr
    d.cli("show-secret", "my-space", "web", ok=False)
    assert "verifies public keys only" in d.errors[-1]
    time.sleep(1.1)  # honoured by the server within a second
    assert d.start_session(api_key, "plain", signing.sign(secret, "plain"))[1]["trusted"] is False
    assert d.start_session(api_key, "user-1", deployed_signer("user-1"))[1]["trusted"] is True
    token = site_token(d, "u-new", form=None)  # no form: a token, nothing else verifies
    assert d.start_session(api_key, "u-new", token)[1]["trusted"] is True

    # The private key is in no file the project wrote, no log, no error.
    d.stop_server()
    body = "".join(pem.splitlines()[1:-1])
    image = b"".join(p.read_bytes() for p in d.root.iterdir() if p.name.startswith("db.sqlite3"))
    texts = [d.server_output.read_text("utf-8", "replace"), *d.errors]
    for piece in (body[:40], body[-40:]):
        assert piece.encode() not in image
        assert not any(piece in text for text in texts)
