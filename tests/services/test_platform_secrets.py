"""The secret lifecycle: rotation, grace periods, storage at rest.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import sqlite3
import sys
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from trusted_identity.crypto import DecryptionError
from trusted_identity.exceptions import (
    InvalidRequest,
    ServiceUnavailable,
)
from trusted_identity.models import (
    PlatformSecret,
)
from trusted_identity.services import lookup, platform_secrets, verification
from trusted_identity.signing import sign

from ..factories import (
    PlatformFactory,
    SpaceFactory,
)
from .helpers import USER_ID, _counts, _current_rows, _secret, _start, _verifies


def test_rotation_with_default_grace_keeps_both_verifying(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    assert _verifies(platform, old)  # warms the cache
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor)
    assert new != old
    assert _verifies(platform, new)
    assert _verifies(platform, old)
    retired = PlatformSecret.objects.get(platform=platform, retired_at__isnull=False)
    expected_end = retired.retired_at + timedelta(hours=24)
    assert retired.valid_until == expected_end
    assert abs(retired.valid_until - (timezone.now() + timedelta(hours=24))) < timedelta(minutes=1)
    assert _secret(platform, cli_actor) == new


def test_default_grace_follows_the_setting(settings, platform, cli_actor):
    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "DEFAULT_GRACE": timedelta(hours=2)}
    platform_secrets.rotate_secret(platform, cli_actor)
    retired = PlatformSecret.objects.get(platform=platform, retired_at__isnull=False)
    assert retired.valid_until - retired.retired_at == timedelta(hours=2)


def test_rotation_with_zero_grace_revokes_at_once(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    assert _verifies(platform, old)  # warms the cache
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(0))
    assert not _verifies(platform, old)
    assert _verifies(platform, new)
    assert platform_secrets.previous_secret_valid_until(platform) is None


def test_two_rotations_with_grace_all_still_verify(platform, cli_actor, commit):
    first = _secret(platform, cli_actor)
    with commit():
        second = platform_secrets.rotate_secret(platform, cli_actor)
    with commit():
        third = platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(hours=1))
    assert len({first, second, third}) == 3
    assert _verifies(platform, first)
    assert _verifies(platform, second)
    assert _verifies(platform, third)
    assert _current_rows(platform).count() == 1
    assert PlatformSecret.objects.filter(platform=platform).count() == 3
    # The last of the previous secrets ends with the longer, first grace period.
    until = platform_secrets.previous_secret_valid_until(platform)
    assert until - timezone.now() > timedelta(hours=23)


def test_signing_uses_the_new_secret(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    assert verification.sign_for("acme", "ios", USER_ID) == sign(old, USER_ID)
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor)
    signed = verification.sign_for("acme", "ios", USER_ID)
    assert signed == sign(new, USER_ID)
    assert signed != sign(old, USER_ID)


def test_expired_previous_secrets_stop_verifying(platform, cli_actor, commit):
    old = _secret(platform, cli_actor)
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor)
    assert _verifies(platform, old)
    # Time passes: the grace period ends (edited in the database, not mocked).
    PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False).update(
        valid_until=timezone.now() - timedelta(seconds=1)
    )
    with commit():  # the edit bypassed the service layer
        lookup.verification_changed()
    assert not _verifies(platform, old)
    assert _verifies(platform, new)
    assert platform_secrets.previous_secret_valid_until(platform) is None
    # The next rotation keeps the expired row (EXPIRED_SECRET_RETENTION, never accepted)...
    with commit():
        newest = platform_secrets.rotate_secret(platform, cli_actor)
    assert PlatformSecret.objects.filter(platform=platform).count() == 3
    assert _verifies(platform, new) and _verifies(platform, newest)
    assert not _verifies(platform, old)
    # ... and one after that retention clears it away.
    PlatformSecret.objects.filter(platform=platform, valid_until__lt=timezone.now()).update(
        valid_until=timezone.now() - timedelta(days=30, seconds=1)
    )
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor)
    assert PlatformSecret.objects.filter(platform=platform).count() == 3  # newest, new, current
    assert not _verifies(platform, old)


def test_exactly_one_current_secret_after_rotations(platform, cli_actor):
    for grace in (timedelta(hours=24), timedelta(0), timedelta(minutes=30), timedelta(days=7)):
        platform_secrets.rotate_secret(platform, cli_actor, grace=grace)
        assert _current_rows(platform).count() == 1
    current = _current_rows(platform).get()
    assert current.valid_until is None
    assert _secret(platform, cli_actor) == current.get_secret()


@pytest.mark.parametrize("grace", [timedelta(seconds=-1), timedelta(days=91)])
def test_rotation_refuses_bad_grace(platform, cli_actor, grace):
    before = list(PlatformSecret.objects.values_list("pk", "ciphertext", "retired_at"))
    with pytest.raises(InvalidRequest):
        platform_secrets.rotate_secret(platform, cli_actor, grace=grace)
    assert list(PlatformSecret.objects.values_list("pk", "ciphertext", "retired_at")) == before


def test_grace_ends_on_time_even_in_a_warm_cache(platform, cli_actor, commit):
    """The cached snapshot carries the end of grace: it can't outlive it."""
    old = _secret(platform, cli_actor)
    with commit():
        new = platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(seconds=1))
    assert _verifies(platform, old)  # warms the cache while the old secret is in grace
    time.sleep(1.1)
    assert not _verifies(platform, old)
    assert _verifies(platform, new)


def _raw_database_text():
    """Every value of every table, read with raw SQL."""
    values = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        values.append(bytes(value).decode("latin-1"))
                    else:
                        values.append(str(value))
    return "\n".join(values)


def _sqlite_file_bytes(tmp_path: Path) -> list[bytes]:
    """The database file's bytes: the file itself when there is one, and a serialized
    copy of what this connection sees (which works for the in-memory test database)."""
    if connection.vendor != "sqlite":
        return []
    images = []
    name = str(connection.settings_dict["NAME"])
    if name and not name.startswith("file:") and ":memory:" not in name and Path(name).is_file():
        images.append(Path(name).read_bytes())
    connection.ensure_connection()
    raw = connection.connection
    if hasattr(raw, "serialize"):  # Python 3.11+: the pages this connection sees
        copy = tmp_path / "copy.sqlite3"
        copy.write_bytes(raw.serialize())
        # The copy is a real database file holding our rows (the test's transaction
        # is still open, which is why this is not a sqlite3 backup: that would wait).
        with closing(sqlite3.connect(copy)) as check:
            table = PlatformSecret._meta.db_table
            assert check.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0
        images.append(copy.read_bytes())
    return images


def test_the_database_holds_no_plaintext_secret(space, cli_actor, tmp_path):
    other_space = SpaceFactory()
    platforms = [
        PlatformFactory(space=space, kind="ios"),
        PlatformFactory(space=space, kind="web"),
        PlatformFactory(space=other_space, kind="roku"),
    ]
    plaintexts = []
    for platform in platforms:
        plaintexts.append(platform_secrets.reveal_secret(platform, cli_actor))
        plaintexts.append(platform_secrets.rotate_secret(platform, cli_actor))
        plaintexts.append(
            platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(hours=1))
        )
        _start(platform, {"userId": USER_ID, "signed": sign(plaintexts[-1], USER_ID)})
    assert len(set(plaintexts)) == 9
    needles = [s for secret in plaintexts for s in (secret, secret.split("_", 2)[2])]

    ciphertexts = list(PlatformSecret.objects.values_list("ciphertext", flat=True))
    assert len(ciphertexts) == 9
    for ciphertext in ciphertexts:
        assert ciphertext.startswith("v1:")
        assert not any(needle in ciphertext for needle in needles)

    dump = _raw_database_text()
    assert ciphertexts[0] in dump  # the dump really holds the secrets table
    assert not [needle for needle in needles if needle in dump]

    images = _sqlite_file_bytes(tmp_path)
    if connection.vendor == "sqlite" and sys.version_info >= (3, 11):
        assert images
    for image in images:
        assert ciphertexts[0].encode() in image  # the copy really holds our rows
        assert not [needle for needle in needles if needle.encode() in image]
        assert not [needle for needle in needles if needle.encode("utf-16-le") in image]


def test_a_revoked_rows_ciphertext_copied_over_the_current_row_does_not_decrypt(
    platform, cli_actor, commit
):
    """Finding 9 of the revocation issue: ciphertexts are bound to their row, not only
    to their platform, so restoring a revoked secret by copying its ciphertext fails."""
    revoked_secret = _secret(platform, cli_actor)
    revoked_row = _current_rows(platform).get()
    with commit():
        platform_secrets.rotate_secret(platform, cli_actor, grace=timedelta(0))
    _current_rows(platform).update(ciphertext=revoked_row.ciphertext)

    with pytest.raises(DecryptionError):
        _current_rows(platform).get().get_secret()
    with pytest.raises(ServiceUnavailable):
        platform_secrets.reveal_secret(platform, cli_actor)
    with commit():
        lookup.verification_changed()  # the edit bypassed the service layer
    with pytest.raises(ServiceUnavailable):
        _start(platform, {"userId": USER_ID, "signed": sign(revoked_secret, USER_ID)})
    assert "valid" not in _counts(platform)


def test_a_ciphertext_copied_to_another_platform_does_not_decrypt(
    platform, other_platform, cli_actor
):
    donor_secret = _secret(platform, cli_actor)
    own_secret = _secret(other_platform, cli_actor)
    donor_ciphertext = _current_rows(platform).get().ciphertext
    _current_rows(other_platform).update(ciphertext=donor_ciphertext)

    row = _current_rows(other_platform).get()
    assert row.ciphertext == donor_ciphertext
    with pytest.raises(DecryptionError):
        row.get_secret()
    with pytest.raises(ServiceUnavailable):
        platform_secrets.reveal_secret(other_platform, cli_actor)

    for secret in (donor_secret, own_secret):
        with pytest.raises(ServiceUnavailable) as excinfo:
            _start(other_platform, {"userId": USER_ID, "signed": sign(secret, USER_ID)})
        assert excinfo.value.code == "service_unavailable"
        assert donor_secret not in excinfo.value.message
    with pytest.raises(ServiceUnavailable):
        verification.sign_for("acme", "android", USER_ID)
    assert "valid" not in _counts(other_platform)
    # The donor is untouched.
    assert _start(platform, {"userId": USER_ID, "signed": sign(donor_secret, USER_ID)}).trusted


def test_prune_and_rotation_delete_exactly_the_secrets_past_their_retention(platform, cli_actor):
    """The rule of ``SecretState``: ended exactly ``EXPIRED_SECRET_RETENTION`` ago is past
    it (deleted); a microsecond later than that is still kept for diagnosis."""
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    platform_secrets.rotate_secret(platform, cli_actor, timedelta(0))
    now = timezone.now()
    retention = timedelta(days=30)
    kept, gone = PlatformSecret.objects.filter(platform=platform, retired_at__isnull=False)
    PlatformSecret.objects.filter(pk=kept.pk).update(
        valid_until=now - retention + timedelta(microseconds=1)
    )
    PlatformSecret.objects.filter(pk=gone.pk).update(valid_until=now - retention)
    assert platform_secrets.delete_expired_secrets(now) == 1
    assert PlatformSecret.objects.filter(pk=kept.pk).exists()
    assert not PlatformSecret.objects.filter(pk=gone.pk).exists()
