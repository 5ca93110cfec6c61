"""Encryption-key rotation end to end (SECURITY.md, "Rotating the encryption key").

Add a new key first, ``rekey``, remove the old key: every signature made before
(current secrets and secrets still in their grace period) keeps verifying through
HTTP, the sign view and the CLI. ``rekey`` is idempotent and, interrupted by a
database failure in the middle (Django's ``execute_wrapper``, real commits with
``transactional_db``), resumes where it stopped. The same runbook through real
processes and environment variables is in ``test_deployment.py``.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError

from trusted_identity import runtime, signing
from trusted_identity.crypto import generate_key, key_id_for
from trusted_identity.models import PlatformSecret
from trusted_identity.services import access, platform_secrets
from trusted_identity.services.rekey import rekey

from .factories import PlatformFactory, SpaceFactory, UserFactory
from .hardening import failing_sql

SESSIONS = "/trusted-identity/v1/sessions"
SIGN = "/trusted-identity/sign/"
USER_IDS = ["42", " 42", "USER-1", "Zoë", "用户-🚀"]


def set_keys(settings, *keys):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": ",".join(keys)}


def key_id(key: str) -> str:
    return key_id_for(base64.urlsafe_b64decode(key))


def key_ids_in_use() -> set[str]:
    return {t.split(":")[1] for t in PlatformSecret.objects.values_list("ciphertext", flat=True)}


def cli(*args):
    out, err = StringIO(), StringIO()
    call_command("trusted_identity", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def start(client, platform, user_id, signed):
    return client.post(
        SESSIONS,
        json.dumps({"userId": user_id, "signed": signed}),
        content_type="application/json",
        HTTP_X_API_KEY=platform.api_key,
    )


class Fleet:
    """Platforms in two spaces, each with a current secret and secrets in grace, and
    the signatures their users' servers made with every one of them."""

    def __init__(self):
        acme, globex = SpaceFactory(slug="acme"), SpaceFactory(slug="globex")
        self.platforms = [
            PlatformFactory(space=acme, kind="ios", enforced=True),
            PlatformFactory(space=acme, kind="web", enforced=True),
            PlatformFactory(space=globex, kind="roku", enforced=True),
        ]
        actor = access.get_cli_actor()
        ios, web, roku = self.platforms
        first = {p.pk: platform_secrets.current_secret_row(p).get_secret() for p in self.platforms}
        # ios: a current secret and two in grace; roku: one in grace; web: the previous
        # secret revoked at once (grace 0), so it must stay refused.
        self.valid = {
            ios.pk: [
                first[ios.pk],
                platform_secrets.rotate_secret(ios, actor, timedelta(hours=2)),
                platform_secrets.rotate_secret(ios, actor, timedelta(hours=1)),
            ],
            web.pk: [platform_secrets.rotate_secret(web, actor, timedelta(0))],
            roku.pk: [
                first[roku.pk],
                platform_secrets.rotate_secret(roku, actor, timedelta(hours=2)),
            ],
        }
        self.revoked = {web.pk: first[web.pk]}
        runtime.current().reset()

    def current(self, platform) -> str:
        return self.valid[platform.pk][-1]

    def check_everything_verifies(self, client):
        for platform in self.platforms:
            for secret in self.valid[platform.pk]:
                for user_id in USER_IDS:
                    response = start(client, platform, user_id, signing.sign(secret, user_id))
                    assert response.status_code == 201, (platform, response.content)
                    assert json.loads(response.content)["trusted"] is True
            if platform.pk in self.revoked:
                response = start(
                    client, platform, "42", signing.sign(self.revoked[platform.pk], "42")
                )
                assert response.status_code == 403
            out, _err = cli("sign", platform.space.slug, platform.kind, "42")
            assert out == signing.sign(self.current(platform), "42") + "\n"
            out, _err = cli("show-secret", platform.space.slug, platform.kind)
            assert out == self.current(platform) + "\n"
        user = UserFactory(username="site-user", is_staff=False)
        client.force_login(user)
        response = client.get(SIGN, {"platform": "roku", "space": "globex"})
        assert json.loads(response.content)["signed"] == signing.sign(
            self.current(self.platforms[2]), str(user.pk)
        )
        client.logout()


def test_add_a_key_rekey_remove_the_old_key_everything_verifies(
    client, settings, db, django_capture_on_commit_callbacks
):
    old_key = generate_key()
    set_keys(settings, old_key)
    fleet = Fleet()
    assert key_ids_in_use() == {key_id(old_key)}
    fleet.check_everything_verifies(client)

    new_key = cli("generate-key")[0].strip()
    set_keys(settings, new_key, old_key)  # 1. the new key first: it encrypts, both decrypt
    fleet.check_everything_verifies(client)

    with django_capture_on_commit_callbacks(execute=True):
        _out, err = cli("rekey", "--batch-size", "2")  # 2. re-encrypt, in several batches
    total = PlatformSecret.objects.count()
    assert f"Re-encrypted {total} of {total} secrets" in err
    assert key_ids_in_use() == {key_id(new_key)}

    set_keys(settings, new_key)  # 3. the old key retired
    fleet.check_everything_verifies(client)

    # Rekey is idempotent: a second run changes nothing at all.
    before = list(PlatformSecret.objects.order_by("pk").values_list("pk", "ciphertext"))
    _out, err = cli("rekey")
    assert f"Re-encrypted 0 of {total} secrets" in err
    assert list(PlatformSecret.objects.order_by("pk").values_list("pk", "ciphertext")) == before

    # Life goes on under the new key: a rotation, and its secret verifies.
    platform = fleet.platforms[0]
    with django_capture_on_commit_callbacks(execute=True):
        out, _err = cli("rotate-secret", "acme", "ios", "--grace", "1h")
    fleet.valid[platform.pk].append(out.strip())
    fleet.check_everything_verifies(client)

    # With only the old key, nothing decrypts, and the error names the missing key.
    set_keys(settings, old_key)
    response = start(client, platform, "42", signing.sign(fleet.current(platform), "42"))
    assert response.status_code == 503
    with pytest.raises(CommandError, match=key_id(new_key)):
        cli("show-secret", "acme", "ios")


def rekey_fixture_rows(settings):
    old_key, new_key = generate_key(), generate_key()
    set_keys(settings, old_key)
    space = SpaceFactory(slug="big")
    platforms = [
        PlatformFactory(space=space, kind=kind, enforced=True)
        for kind in ("web", "ios", "android", "tvos", "androidtv", "roku")
    ]
    secrets = {p.pk: platform_secrets.current_secret_row(p).get_secret() for p in platforms}
    set_keys(settings, new_key, old_key)
    return old_key, new_key, platforms, secrets


@pytest.mark.parametrize("door", ["service", "cli"])
def test_interrupted_rekey_resumes_and_nothing_is_lost(client, settings, transactional_db, door):
    """Each batch commits on its own: a failure in the second batch leaves the first
    re-encrypted and the rest as they were, every secret readable, and a second run
    finishes the job."""
    old_key, new_key, platforms, secrets = rekey_fixture_rows(settings)
    batch = 2
    update = r'^UPDATE "trusted_identity_platformsecret"'

    with failing_sql(update, nth=2) as failed:
        if door == "service":
            with pytest.raises(DatabaseError):
                rekey(batch_size=batch)
        else:
            with pytest.raises(CommandError, match="database error: injected fault"):
                cli("rekey", "--batch-size", str(batch))
    assert failed
    ids = list(PlatformSecret.objects.order_by("pk").values_list("ciphertext", flat=True))
    assert [t.split(":")[1] for t in ids] == [key_id(new_key)] * batch + [key_id(old_key)] * (
        len(ids) - batch
    )
    # Half-way, with both keys configured, everything verifies.
    for platform in platforms:
        response = start(client, platform, "42", signing.sign(secrets[platform.pk], "42"))
        assert response.status_code == 201

    if door == "service":
        result = rekey(batch_size=batch)
        assert (result.rekeyed, result.failed) == (len(ids) - batch, [])
    else:
        _out, err = cli("rekey", "--batch-size", str(batch))
        assert f"Re-encrypted {len(ids) - batch} of {len(ids)}" in err
    assert key_ids_in_use() == {key_id(new_key)}

    set_keys(settings, new_key)
    runtime.current().reset()
    for platform in platforms:
        assert platform_secrets.current_secret_row(platform).get_secret() == secrets[platform.pk]
        response = start(client, platform, "42", signing.sign(secrets[platform.pk], "42"))
        assert response.status_code == 201
