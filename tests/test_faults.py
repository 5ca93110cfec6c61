"""Faults survived (SECURITY.md, "Faults"): the database failing in the middle of an
operation, missing, wrong or broken encryption keys, keys unknown for some rows, the
cache down, the database down, a platform deleted.

Database failures are injected with Django's own hook, ``connection.execute_wrapper``
(``tests/hardening.failing_sql``): the chosen statement raises an OperationalError
instead of running, as a dropped connection would. Nothing of ours is mocked.
Interrupted ``rekey`` runs are in ``test_key_rotation.py``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from trusted_identity import runtime, signing
from trusted_identity.crypto import KeyRing, generate_key
from trusted_identity.exceptions import ServiceUnavailable
from trusted_identity.models import Platform, PlatformSecret, Role
from trusted_identity.services import (
    access,
    enforcement,
    figures,
    platform_secrets,
    spaces,
    verification,
)
from trusted_identity.services.rekey import rekey

from .factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory
from .hardening import count, failing_sql
from .settings import TEST_ENCRYPTION_KEY

SESSIONS = "/trusted-identity/v1/sessions"
SIGN = "/trusted-identity/sign/"
USER = "user-7"


def start(client, platform, user_id=USER, signed=None):
    body = {"userId": user_id} if user_id is not None else {}
    if signed is not None:
        body["signed"] = signed
    return client.post(
        SESSIONS, json.dumps(body), content_type="application/json", HTTP_X_API_KEY=platform.api_key
    )


def outcome(response):
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    return body["signature"] if response.status_code == 201 else body["error"]["code"]


def rows_of(platform):
    """Everything stored about a platform's secrets, to compare before and after."""
    return list(
        PlatformSecret.objects.filter(platform=platform)
        .order_by("pk")
        .values_list("pk", "ciphertext", "retired_at", "valid_until")
    )


def current_secret(platform):
    return platform_secrets.current_secret_row(platform).get_secret()


def set_keys(settings, keys):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": keys}


@pytest.fixture
def enforced(db):
    space = SpaceFactory(slug="acme", name="Acme")
    return PlatformFactory(space=space, kind="android", enforced=True)


@pytest.fixture
def owner(enforced):
    user = UserFactory(username="olivia")
    MembershipFactory(space=enforced.space, user=user, role=Role.OWNER)
    return user


# ------------------------------------------------- rotation failing midway

ROTATION_STATEMENTS = {
    "drop-expired": r'^DELETE FROM "trusted_identity_platformsecret"',
    "retire-current": r'^UPDATE "trusted_identity_platformsecret"',
    "insert-new": r'^INSERT INTO "trusted_identity_platformsecret"',
    "audit-entry": r'^INSERT INTO "trusted_identity_auditevent"',  # every actor writes one
}


def rotate_through(door, platform, owner, client):
    """Rotate with 1 hour of grace through the service, the CLI or the admin."""
    if door == "service":
        return platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(hours=1))
    if door == "cli":
        call_command("trusted_identity", "rotate-secret", "acme", platform.kind, "--grace", "1h")
        return None
    client.force_login(owner)
    client.raise_request_exception = False
    url = reverse("admin:trusted_identity_space_rotate_secret", args=[platform.space_id, "android"])
    return client.post(url, {"post": "yes", "grace": "1h"})


@pytest.mark.parametrize("door", ["service", "cli", "admin"])
@pytest.mark.parametrize("statement", ROTATION_STATEMENTS)
def test_rotation_failing_midway_keeps_the_old_secret_current_and_valid(
    client, enforced, owner, door, statement, django_capture_on_commit_callbacks
):
    actor = access.get_cli_actor()
    platform_secrets.rotate_secret(enforced, actor, timedelta(0))  # leaves an expired row to drop
    PlatformSecret.objects.filter(platform=enforced, retired_at__isnull=False).update(
        valid_until=timezone.now() - timedelta(days=31)  # past EXPIRED_SECRET_RETENTION
    )
    old = current_secret(enforced)
    signed = signing.sign(old, USER)
    assert outcome(start(client, enforced, signed=signed)) == "valid"  # warms the cache
    before, entries = rows_of(enforced), LogEntry.objects.count()

    with (
        django_capture_on_commit_callbacks() as callbacks,
        failing_sql(ROTATION_STATEMENTS[statement]) as failed,
    ):
        if door == "service":
            with pytest.raises(DatabaseError):
                rotate_through(door, enforced, owner, client)
        elif door == "cli":
            with pytest.raises(CommandError, match="database error: injected fault"):
                rotate_through(door, enforced, owner, client)
        else:
            assert rotate_through(door, enforced, owner, client).status_code == 500
    assert failed, "the fault was not injected"
    assert callbacks == []  # no cache invalidation for a rotation that did not happen

    # Nothing changed, nothing lost: the same single current secret, still verifying.
    assert rows_of(enforced) == before
    assert PlatformSecret.objects.filter(platform=enforced, retired_at__isnull=True).count() == 1
    assert current_secret(enforced) == old
    assert LogEntry.objects.count() == entries
    assert outcome(start(client, enforced, signed=signed)) == "valid"
    caches["default"].clear()
    assert outcome(start(client, enforced, signed=signed)) == "valid"
    assert verification.sign_for("acme", "android", USER) == signed

    # And the next attempt works.
    with django_capture_on_commit_callbacks(execute=True):
        new = platform_secrets.rotate_secret(enforced, actor, timedelta(hours=1))
    assert outcome(start(client, enforced, signed=signing.sign(new, USER))) == "valid"
    assert outcome(start(client, enforced, signed=signed)) == "valid"  # in grace


@pytest.mark.parametrize("statement", ["insert-new", "audit-entry"])
def test_bulk_rotation_failing_midway_rotates_none(enforced, statement):
    space = enforced.space
    others = [PlatformFactory(space=space, kind=kind) for kind in ("ios", "web", "roku")]
    platforms = [enforced, *others]
    before = {p.pk: rows_of(p) for p in platforms}
    with failing_sql(ROTATION_STATEMENTS[statement]), pytest.raises(DatabaseError):
        platform_secrets.rotate_secrets(platforms, access.get_cli_actor(), timedelta(hours=1))
    assert {p.pk: rows_of(p) for p in platforms} == before


def test_add_platform_failing_midway_leaves_no_platform_without_a_secret(enforced):
    space = enforced.space
    with failing_sql(ROTATION_STATEMENTS["insert-new"]), pytest.raises(DatabaseError):
        spaces.add_platform(space, "ios")
    assert not Platform.objects.filter(space=space, kind="ios").exists()
    platform = spaces.add_platform(space, "ios")
    assert current_secret(platform).startswith("tis_ios_")


@pytest.mark.parametrize(
    "statement",
    [ROTATION_STATEMENTS["audit-entry"], r'^INSERT INTO "trusted_identity_policychange"'],
)
def test_enforcement_change_failing_midway_changes_nothing(client, enforced, statement):
    signed = signing.sign(current_secret(enforced), USER)
    with failing_sql(statement), pytest.raises(DatabaseError):
        enforcement.set_enforcement(enforced, False, access.get_cli_actor())
    enforced.refresh_from_db()
    assert enforced.enforced is True
    assert outcome(start(client, enforced)) == "signature_required"
    assert outcome(start(client, enforced, signed=signed)) == "valid"


# --------------------------------------------------------- the database down


@pytest.mark.parametrize("debug", [False, True])
def test_database_down_at_session_start_is_a_json_503(client, enforced, settings, debug):
    settings.DEBUG = debug
    signed = signing.sign(current_secret(enforced), USER)
    with failing_sql(r".", times=10**6):
        response = start(client, enforced, signed=signed)
    assert response.status_code == 503
    assert outcome(response) == "service_unavailable"


def test_database_down_with_a_warm_cache_still_decides(client, enforced, caplog):
    """The decision needs only the cached platform: a valid start is still accepted and
    an invalid one still refused; the count that could not be written is logged."""
    signed = signing.sign(current_secret(enforced), USER)
    assert outcome(start(client, enforced, signed=signed)) == "valid"
    with failing_sql(r".", times=10**6):
        assert outcome(start(client, enforced, signed=signed)) == "valid"
        assert outcome(start(client, enforced, signed="0" * 64)) == "signature_invalid"
    assert "Could not record" in caplog.text


# ------------------------------------------------------- encryption keys


def test_missing_encryption_key_is_a_clear_error_and_loses_nothing(
    client, enforced, settings, caplog
):
    count("faults_injected")  # the key configuration broken on purpose
    count("fault_scenarios")
    secret = current_secret(enforced)
    signed = signing.sign(secret, USER)
    before = rows_of(enforced)
    settings.DEBUG = False
    set_keys(settings, "")

    response = start(client, enforced, signed=signed)
    assert response.status_code == 503 and outcome(response) == "service_unavailable"
    assert "TRUSTED_IDENTITY_ENCRYPTION_KEYS is not set" in caplog.text
    assert outcome(start(client, enforced, user_id=None)) == "none"  # visitors need no key
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_IDENTITY_ENCRYPTION_KEYS"):
        platform_secrets.reveal_secret(enforced, access.get_cli_actor())
    for args in (
        ("show-secret", "acme", "android"),
        ("rotate-secret", "acme", "android"),
        ("sign", "acme", "android", USER),
        ("rekey",),
        ("add-platform", "acme", "ios"),
    ):
        with pytest.raises(CommandError, match="TRUSTED_IDENTITY_ENCRYPTION_KEYS is not set"):
            call_command("trusted_identity", *args)
    assert [e.id for e in run_checks() if e.id.startswith("trusted_identity.E")] == [
        "trusted_identity.E001"
    ]
    assert rows_of(enforced) == before
    assert not Platform.objects.filter(kind="ios").exists()

    set_keys(settings, TEST_ENCRYPTION_KEY)
    assert current_secret(enforced) == secret
    assert outcome(start(client, enforced, signed=signed)) == "valid"


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ("not base64 at all!", "encryption key #1 is not URL-safe base64"),
        ("c2hvcnQ=", "encryption key #1 decodes to 5 bytes; 32 are needed"),
        (f"{TEST_ENCRYPTION_KEY},???", "encryption key #2 decodes to 0 bytes; 32 are needed"),
    ],
    ids=["not-base64", "too-short", "second-bad"],
)
def test_unusable_encryption_key_names_the_problem_and_loses_nothing(
    client, enforced, settings, caplog, keys, named
):
    count("faults_injected")  # the key configuration broken on purpose
    count("fault_scenarios")
    secret = current_secret(enforced)
    signed = signing.sign(secret, USER)
    before = rows_of(enforced)
    settings.DEBUG = False
    set_keys(settings, keys)

    response = start(client, enforced, signed=signed)
    assert response.status_code == 503 and outcome(response) == "service_unavailable"
    assert named in caplog.text
    with pytest.raises(CommandError, match=named.replace("#", r"\#")):
        call_command("trusted_identity", "show-secret", "acme", "android")
    assert [e.id for e in run_checks() if e.id.startswith("trusted_identity.E")] == [
        "trusted_identity.E002"
    ]
    assert rows_of(enforced) == before

    set_keys(settings, TEST_ENCRYPTION_KEY)
    assert outcome(start(client, enforced, signed=signed)) == "valid"


def test_wrong_encryption_key_names_the_row_and_the_key_and_loses_nothing(
    client, enforced, settings, caplog
):
    count("faults_injected")  # the key configuration broken on purpose
    count("fault_scenarios")
    secret = current_secret(enforced)
    signed = signing.sign(secret, USER)
    row = platform_secrets.current_secret_row(enforced)
    before = rows_of(enforced)
    stray = generate_key()
    set_keys(settings, stray)
    key_id = row.ciphertext.split(":")[1]

    response = start(client, enforced, signed=signed)
    assert response.status_code == 503 and outcome(response) == "service_unavailable"
    assert f"platform #{enforced.pk}" in caplog.text and key_id in caplog.text
    with pytest.raises(CommandError) as info:
        call_command("trusted_identity", "show-secret", "acme", "android")
    message = str(info.value)
    assert f"row {row.pk}" in message and key_id in message
    assert "not in TRUSTED_IDENTITY_ENCRYPTION_KEYS" in message
    with pytest.raises(ServiceUnavailable):
        verification.sign_for("acme", "android", USER)
    assert rows_of(enforced) == before

    set_keys(settings, TEST_ENCRYPTION_KEY)
    assert outcome(start(client, enforced, signed=signed)) == "valid"


def test_key_unknown_for_some_rows_names_those_rows_and_spares_the_others(
    client, enforced, settings, caplog
):
    """One platform's rows were encrypted with a key that is gone: its starts are a 503
    naming it, the other platforms keep working, and rekey names exactly its rows."""
    count("faults_injected")  # the key configuration broken on purpose
    count("fault_scenarios")
    space = enforced.space
    healthy = PlatformFactory(space=space, kind="ios", enforced=True)
    lost_key = generate_key()
    lost_ring = KeyRing([lost_key])
    for row in PlatformSecret.objects.filter(platform=enforced):
        row.ciphertext = lost_ring.encrypt(
            row.get_secret(), PlatformSecret.associated_data(enforced.pk, row.pk)
        )
        row.save(update_fields=["ciphertext"])
    runtime.current().reset()
    good = signing.sign(current_secret(healthy), USER)
    lost_rows = set(PlatformSecret.objects.filter(platform=enforced).values_list("pk", flat=True))

    assert outcome(start(client, enforced, signed="0" * 64)) == "service_unavailable"
    assert f"platform #{enforced.pk}" in caplog.text
    assert outcome(start(client, healthy, signed=good)) == "valid"

    result = rekey()
    assert {pk for pk, _platform, _reason in result.failed} == lost_rows
    assert all(platform_id == enforced.pk for _pk, platform_id, _ in result.failed)
    with pytest.raises(CommandError) as info:
        call_command("trusted_identity", "rekey")
    for pk in lost_rows:
        assert f"row {pk} (platform #{enforced.pk})" in str(info.value)
    assert outcome(start(client, healthy, signed=good)) == "valid"


# ---------------------------------------------------------- the cache down


@pytest.fixture
def cache_down(settings):
    """The project's Redis backend pointed at a closed port."""
    settings.CACHES = {
        "default": {
            "BACKEND": "project.cache.ReusingRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.5},
        }
    }
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        "RATE_LIMIT": "5/m",
        "SIGN_RATE_LIMIT": "5/m",
    }
    with pytest.raises(Exception):  # noqa: B017 - really down: redis' own ConnectionError
        caches["default"].get("probe")
    count("faults_injected")
    count("fault_scenarios")
    return settings


def test_cache_down_session_start_answers_from_the_database(
    client, enforced, cache_down, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.WARNING, logger="trusted_identity")
    open_platform = PlatformFactory(space=enforced.space, kind="ios")
    secret = current_secret(enforced)
    signed = signing.sign(secret, USER)

    for _ in range(8):  # over the 5/m limit: limits are skipped, not enforced, when down
        assert outcome(start(client, enforced, signed=signed)) == "valid"
    assert outcome(start(client, enforced, signed="0" * 64)) == "signature_invalid"
    assert outcome(start(client, enforced)) == "signature_required"
    assert outcome(start(client, open_platform, signed="0" * 64)) == "invalid"
    assert outcome(start(client, open_platform, user_id=None)) == "none"
    assert figures.readiness(enforced).valid == 8
    assert "cache unavailable" in caplog.text

    # Writes take effect at once: nothing stale can be served from a cache that is down.
    with django_capture_on_commit_callbacks(execute=True):
        new = platform_secrets.rotate_secret(enforced, access.get_cli_actor(), timedelta(0))
    assert outcome(start(client, enforced, signed=signed)) == "signature_invalid"
    assert outcome(start(client, enforced, signed=signing.sign(new, USER))) == "valid"
    with django_capture_on_commit_callbacks(execute=True):
        enforcement.set_enforcement(enforced, False, access.get_cli_actor())
    assert outcome(start(client, enforced)) == "missing"
    with django_capture_on_commit_callbacks(execute=True):
        Platform.objects.filter(pk=open_platform.pk).delete()
    assert outcome(start(client, open_platform, user_id=None)) == "invalid_api_key"


def test_cache_down_sign_view_still_signs(client, enforced, cache_down):
    user = UserFactory(username="site-user", is_staff=False)
    client.force_login(user)
    response = client.get(SIGN, {"platform": "android", "space": "acme"})
    assert response.status_code == 200
    assert json.loads(response.content)["signed"] == signing.sign(
        current_secret(enforced), str(user.pk)
    )


# ----------------------------------------------- a deleted platform, at once


@pytest.mark.parametrize("how", ["admin-platform", "admin-space", "queryset"])
def test_deleted_platform_key_stops_working_at_once(
    client, enforced, owner, superuser, how, django_capture_on_commit_callbacks
):
    count("fault_scenarios")
    signed = signing.sign(current_secret(enforced), USER)
    assert outcome(start(client, enforced, signed=signed)) == "valid"  # cached now
    admin = Client()
    admin.force_login(superuser if how == "admin-space" else owner)
    with django_capture_on_commit_callbacks(execute=True):
        if how == "admin-platform":
            url = reverse("admin:trusted_identity_platform_delete", args=[enforced.pk])
            assert admin.post(url, {"post": "yes"}).status_code == 302
        elif how == "admin-space":
            url = reverse("admin:trusted_identity_space_delete", args=[enforced.space_id])
            assert admin.post(url, {"post": "yes"}).status_code == 302
        else:
            Platform.objects.filter(pk=enforced.pk).delete()
    assert not Platform.objects.filter(pk=enforced.pk).exists()
    assert outcome(start(client, enforced, signed=signed)) == "invalid_api_key"
    assert outcome(start(client, enforced, user_id=None)) == "invalid_api_key"
