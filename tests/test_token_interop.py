"""Tokens made elsewhere verify here: the vectors Node's crypto computed, and the docs'
(docs/signing.md) Node (``jsonwebtoken``, plain ``crypto``) and Python (PyJWT)
snippets, run as written.

Node runs when it is installed; without it these tests skip, unless ``CI`` is set, when
they fail. The ``jsonwebtoken`` snippet needs the package (``npm install jsonwebtoken``,
found through ``NODE_PATH``; ``.ci/run`` installs it): without it that test skips, unless
``CI`` is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import jwt
import pytest

from tests.support import verify_user_id
from trusted_identity.services import (
    access,
    lookup,
    platform_secrets,
    signature_forms,
    verification,
)
from trusted_identity.services.verification import sign_token_for, verify_signed

from .docs_snippets import snippet
from .factories import PlatformFactory
from .test_http import assert_json, start

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data" / "node-hs256-tokens.json"
GENERATOR = ROOT / "tests" / "node" / "make-token-vectors.mjs"
NODE = shutil.which("node")
USER_IDS = ["42", " 42", "USER-1", "olivia@example.com", "Zoë", "用户-🚀", 'q"\\/', "x" * 300]


def need_node() -> str:
    if NODE is None:
        reason = "node is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Node interop tests")
        pytest.skip(reason)
    return NODE


def load_vectors() -> dict:
    return json.loads(VECTORS.read_text("utf-8"))


@pytest.fixture
def token_platform(space, django_capture_on_commit_callbacks):
    platform = PlatformFactory(space=space, kind="web")
    with django_capture_on_commit_callbacks(execute=True):
        signature_forms.set_signature_form(
            platform, "token", access.get_cli_actor(), force=True, reason="t"
        )
    return platform


def use_secret(platform, secret, commit):
    row = platform_secrets.current_secret_row(platform)
    row.set_secret(secret)
    with commit(execute=True):
        row.save(update_fields=["ciphertext"])
        lookup.verification_changed()


# ---------------------------------------------------------------- the vectors


def test_the_vectors_are_what_the_committed_generator_makes():
    node = need_node()
    made = subprocess.run(
        [node, str(GENERATOR)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(made) == load_vectors()


def test_every_node_vector_through_session_start(
    client, token_platform, monkeypatch, django_capture_on_commit_callbacks
):
    data = load_vectors()
    monkeypatch.setattr(verification, "clock", lambda: data["verifyAt"])
    assert token_platform.token_max_age == data["maxAge"]
    vectors = data["vectors"]
    assert len(vectors) >= 30
    assert sum(v["reason"] is None for v in vectors) >= 20
    for secret in dict.fromkeys(v["secret"] for v in vectors):
        use_secret(token_platform, secret, django_capture_on_commit_callbacks)
        snapshot = lookup.lookup_platform(token_platform.api_key)
        for vector in (v for v in vectors if v["secret"] == secret):
            body = {"userId": vector["userId"], "signed": vector["token"]}
            answer = assert_json(start(client, token_platform.api_key, body))
            expected = "valid" if vector["reason"] is None else "invalid"
            assert answer["signature"] == expected, vector
            assert answer["userId"] == vector["userId"]
            result = verify_signed(snapshot, vector["userId"], vector["token"])
            assert (result.form, result.reason) == ("token", vector["reason"]), vector
    # The same tokens one second before the earliest expiry still verify; after, they don't.
    one = next(v for v in vectors if v["reason"] is None and v["secret"] == secret)
    monkeypatch.setattr(verification, "clock", lambda: data["issuedAt"] + 3600 + 61)
    assert not verify_user_id(snapshot, one["userId"], one["token"])


def test_vectors_decode_with_pyjwt_too():
    data = load_vectors()
    for vector in (v for v in data["vectors"] if v["reason"] is None):
        claims = jwt.decode(
            vector["token"],
            vector["secret"].encode(),
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
        assert claims["sub"] == vector["userId"]


# ------------------------------------------------------- the docs' snippets


def run_node_snippet(code: str, secret: str, user_ids: list[str], *, node_path: str = "") -> list:
    script = code + textwrap.dedent(
        """
            const ids = JSON.parse(process.env.TI_INPUT);
            process.stdout.write(JSON.stringify(ids.map((id) => signUserToken(id))));
            """
    )
    env = {**os.environ, "TRUSTED_IDENTITY_SECRET": secret, "TI_INPUT": json.dumps(user_ids)}
    if node_path:
        env["NODE_PATH"] = node_path
    done = subprocess.run(
        [need_node(), "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_all_verify(client, platform, user_ids, made):
    assert len(made) == len(user_ids)
    for user_id, signed in zip(user_ids, made, strict=True):
        answer = assert_json(start(client, platform.api_key, {"userId": user_id, "signed": signed}))
        assert (answer["signature"], answer["trusted"]) == ("valid", True), user_id


def test_docs_node_crypto_snippet_makes_tokens_that_verify(client, token_platform):
    secret = platform_secrets.reveal_secret(token_platform, access.get_cli_actor())
    made = run_node_snippet(snippet("token-node-crypto"), secret, USER_IDS)
    assert_all_verify(client, token_platform, USER_IDS, made)


def _jsonwebtoken_path() -> str:
    node = need_node()
    node_path = os.environ.get("NODE_PATH", "")
    found = subprocess.run(
        [node, "-e", "require.resolve('jsonwebtoken')"],
        capture_output=True,
        env={**os.environ, "NODE_PATH": node_path},
        timeout=30,
    )
    if found.returncode != 0:
        reason = "jsonwebtoken is not installed (npm install jsonwebtoken; set NODE_PATH)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs it")
        pytest.skip(reason)
    return node_path


def test_docs_jsonwebtoken_snippet_makes_tokens_that_verify(client, token_platform):
    node_path = _jsonwebtoken_path()
    secret = platform_secrets.reveal_secret(token_platform, access.get_cli_actor())
    code = snippet("token-node-jsonwebtoken")
    made = run_node_snippet(code, secret, USER_IDS, node_path=node_path)
    assert_all_verify(client, token_platform, USER_IDS, made)


def test_jsonwebtoken_accepts_the_tokens_made_here(token_platform):
    """The other direction: what the sign view and the CLI make, jsonwebtoken verifies."""
    node_path = _jsonwebtoken_path()
    secret = platform_secrets.reveal_secret(token_platform, access.get_cli_actor())
    tokens = [sign_token_for("acme", "web", user_id).token for user_id in USER_IDS]
    script = """
        const jwt = require("jsonwebtoken");
        const tokens = JSON.parse(process.env.TI_INPUT);
        const out = tokens.map((t) => jwt.verify(t, process.env.TRUSTED_IDENTITY_SECRET,
                                                 { algorithms: ["HS256"] }).sub);
        process.stdout.write(JSON.stringify(out));
    """
    done = subprocess.run(
        [need_node(), "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "TRUSTED_IDENTITY_SECRET": secret,
            "NODE_PATH": node_path,
            "TI_INPUT": json.dumps(tokens),
        },
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == USER_IDS


def test_docs_python_snippet_makes_tokens_that_verify(client, token_platform):
    namespace: dict = {}
    exec(compile(snippet("token-python-pyjwt"), "docs/signing.md", "exec"), namespace)
    secret = platform_secrets.reveal_secret(token_platform, access.get_cli_actor())
    made = [namespace["sign_user_token"](secret, user_id) for user_id in USER_IDS]
    assert_all_verify(client, token_platform, USER_IDS, made)
    short = namespace["sign_user_token"](secret, "42", ttl=5)
    assert (
        jwt.decode(short, secret, algorithms=["HS256"])["exp"]
        - jwt.decode(short, secret, algorithms=["HS256"])["iat"]
        == 5
    )
