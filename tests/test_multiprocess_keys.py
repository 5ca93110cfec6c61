"""Public-key changes reach every serving process within a second (CONTRACT sections 2
and 10), driven like production: two gunicorn servers of two workers each over one
database, without a shared cache (the README's set-up where only the verification
generation carries a change), and the CLI in another process adding, removing and
re-adding keys and moving the platform to public keys only.

Ports: free ones (``isolation.free_port``), so runs beside other suites never meet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trusted_identity.signing import sign

from .cli_host import cli_for
from .isolation import free_port
from .keytoken_helpers import key_token, public_pem_of
from .migrated import migrated_sqlite
from .site_process import site_env
from .test_multiprocess import GUNICORN, ROOT, WITHIN, _honoured_within, _post

pytestmark = [pytest.mark.any_database, pytest.mark.end_to_end]  # the servers' own SQLite file


@pytest.fixture
def servers(request, tmp_path):
    if not GUNICORN.exists() and not os.environ.get("CI"):
        pytest.skip("gunicorn is not installed (the project extra has it)")
    env = site_env(
        "multiprocess-keys", tmp_path / "shared.sqlite3",
        TRUSTED_IDENTITY_RATE_LIMIT="off", WEB_CONCURRENCY="2",
    )  # fmt: skip
    manage = cli_for(request, env)  # the CLI in a process of its own (tests/cli_host.py)

    migrated_sqlite(tmp_path / "shared.sqlite3")  # as `manage.py migrate` makes it
    manage("trusted_identity", "create-space", "multi")
    api_key = manage("trusted_identity", "add-platform", "multi", "web")
    processes, urls = [], []
    for _ in range(2):
        port = free_port()
        with open(tmp_path / f"server-{port}.log", "w") as log:  # the server keeps its copy
            processes.append(
                subprocess.Popen(
                    [str(GUNICORN), "-c", "project/gunicorn.conf.py", "project.wsgi"],
                    cwd=ROOT,
                    env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                )
            )
        urls.append(f"http://127.0.0.1:{port}/trusted-identity/v1/sessions")
    deadline = time.monotonic() + 30
    for url in urls:
        while True:
            try:
                _post(url, api_key, {})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    try:
        yield manage, urls, api_key, tmp_path
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)


def test_key_changes_reach_every_process_within_a_second(servers):
    manage, urls, api_key, tmp_path = servers
    first, second = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    for name, private in (("first", first), ("second", second)):
        (tmp_path / f"{name}.pem").write_text(public_pem_of(private))
    now = int(time.time())
    claims = {"sub": "u1", "iat": now - 5, "exp": now + 3600}

    def signed_with(private, kid):
        return {"userId": "u1", "signed": key_token(private, alg="ES256", kid=kid, claims=claims)}

    secret = manage("trusted_identity", "show-secret", "multi", "web")
    plain = {"userId": "u1", "signed": sign(secret, "u1")}
    one, two = signed_with(first, "one"), signed_with(second, "two")
    # Every worker holds the platform warm: the secret verifies, the token is a refused form.
    warm = [(plain, (201, "valid")), (one, (201, "invalid"))]
    assert _honoured_within(urls, api_key, warm, give_up=5) < 5

    manage("trusted_identity", "add-public-key", "multi", "web", str(tmp_path / "first.pem"),
           "--kid", "one")  # fmt: skip
    manage("trusted_identity", "key-source", "multi", "web", "both")
    manage("trusted_identity", "enforce", "multi", "web", "on", "--force", "--reason", "test")
    expectations = [(plain, (201, "valid")), (one, (201, "valid"))]
    assert _honoured_within(urls, api_key, expectations) < WITHIN

    manage("trusted_identity", "add-public-key", "multi", "web", str(tmp_path / "second.pem"),
           "--kid", "two")  # fmt: skip
    manage("trusted_identity", "remove-public-key", "multi", "web", "one")
    expectations = [(one, (403, "signature_invalid")), (two, (201, "valid"))]
    assert _honoured_within(urls, api_key, expectations) < WITHIN

    manage("trusted_identity", "key-source", "multi", "web", "public-key", "--force",
           "--reason", "all signers moved")  # fmt: skip
    expectations = [(plain, (403, "signature_invalid")), (two, (201, "valid"))]
    assert _honoured_within(urls, api_key, expectations) < WITHIN
