"""Bulk rotation (the admin action's service) and rotations racing each other."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from tests.support import verify_user_id
from trusted_identity.exceptions import PermissionDenied
from trusted_identity.models import AuditEvent, Platform, PlatformSecret, Role
from trusted_identity.services import access, lookup, platform_secrets
from trusted_identity.signing import sign

from .factories import MembershipFactory, PlatformFactory, SpaceFactory, UserFactory


def current_count(platform):
    return PlatformSecret.objects.filter(platform=platform, retired_at__isnull=True).count()


def test_bulk_rotation_rotates_every_platform_and_audits_each(cli_actor):
    platforms = [PlatformFactory(space=SpaceFactory(), kind="web") for _ in range(7)]
    before = {p.pk: platform_secrets.reveal_secret(p, cli_actor) for p in platforms}

    assert platform_secrets.rotate_secrets(platforms, cli_actor, timedelta(hours=1)) == 7

    for platform in platforms:
        assert current_count(platform) == 1
        snapshot = lookup.lookup_platform(platform.api_key)
        assert verify_user_id(snapshot, "u", sign(before[platform.pk], "u"))  # in grace
        assert platform_secrets.reveal_secret(platform, cli_actor) != before[platform.pk]
        messages = AuditEvent.objects.filter(platform=platform, action="rotate").values_list(
            "message", flat=True
        )
        assert any("Rotated the secret" in m and "1 hour" in m for m in messages)


def test_bulk_rotation_with_no_grace_revokes_at_once(cli_actor):
    platforms = [PlatformFactory(space=SpaceFactory(), kind="ios") for _ in range(3)]
    before = {p.pk: platform_secrets.reveal_secret(p, cli_actor) for p in platforms}
    platform_secrets.rotate_secrets(platforms, cli_actor, timedelta(0))
    for platform in platforms:
        snapshot = lookup.lookup_platform(platform.api_key)
        assert not verify_user_id(snapshot, "u", sign(before[platform.pk], "u"))


def test_bulk_rotation_is_all_or_nothing_on_permission(db):
    own, other = SpaceFactory(), SpaceFactory()
    user = UserFactory()
    MembershipFactory(space=own, user=user, role=Role.ADMIN)
    mine, theirs = PlatformFactory(space=own), PlatformFactory(space=other)
    ciphertexts = set(PlatformSecret.objects.values_list("ciphertext", flat=True))

    with pytest.raises(PermissionDenied):
        platform_secrets.rotate_secrets([mine, theirs], access.Actor.admin(user))

    assert set(PlatformSecret.objects.values_list("ciphertext", flat=True)) == ciphertexts
    assert platform_secrets.rotate_secrets([mine], access.Actor.admin(user)) == 1


def _race(target, count):
    barrier = threading.Barrier(count)
    errors = []

    def run(index):
        try:
            barrier.wait()
            target(index)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rotations_leave_exactly_one_current_secret():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks; runs in `make test-postgres`")
    platform = PlatformFactory(kind="web")
    actor = access.get_cli_actor()
    results = {}

    def rotate(index):
        results[index] = platform_secrets.rotate_secret(
            Platform.objects.get(pk=platform.pk), actor, timedelta(hours=1)
        )

    assert _race(rotate, 6) == []
    assert current_count(platform) == 1
    assert PlatformSecret.objects.filter(platform=platform).count() == 7  # first + 6 rotations
    current = platform_secrets.reveal_secret(platform, actor)
    assert current in results.values()  # the last rotation to commit won
    snapshot = lookup.lookup_platform(platform.api_key)
    for plaintext in results.values():  # every other one is still in its grace
        assert verify_user_id(snapshot, "u", sign(plaintext, "u"))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_rotations_do_not_deadlock():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks; runs in `make test-postgres`")
    platforms = [PlatformFactory(space=SpaceFactory(), kind="web") for _ in range(12)]
    actor = access.get_cli_actor()

    def rotate(index):
        # Overlapping selections in opposite orders: locks are taken by primary key.
        chosen = platforms[index % 2 :: 1] if index % 2 else list(reversed(platforms))
        platform_secrets.rotate_secrets(chosen, actor, timedelta(minutes=5))

    assert _race(rotate, 4) == []
    for platform in platforms:
        assert current_count(platform) == 1
