"""Re-encrypting every secret under the first key.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

import pytest

from trusted_identity.crypto import KeyRing, generate_key
from trusted_identity.exceptions import (
    ServiceUnavailable,
)
from trusted_identity.models import (
    PlatformSecret,
)
from trusted_identity.services import lookup, platform_secrets, verification
from trusted_identity.services.rekey import rekey
from trusted_identity.signing import sign

from ..factories import (
    PlatformFactory,
)
from ..settings import TEST_ENCRYPTION_KEY
from .helpers import _current_rows, _key_id, _secret, _set_keys, _start, _verifies


def test_rekey_across_two_keys_then_the_old_key_removed(settings, space, cli_actor, commit):
    old_key, new_key = generate_key(), generate_key()
    _set_keys(settings, old_key)
    ios = PlatformFactory(space=space, kind="ios")
    web = PlatformFactory(space=space, kind="web")
    previous = {p.pk: _secret(p, cli_actor) for p in (ios, web)}
    with commit():
        current = {p.pk: platform_secrets.rotate_secret(p, cli_actor) for p in (ios, web)}
    assert all(_verifies(p, previous[p.pk]) for p in (ios, web))  # warms every cache
    key_ids = {t.split(":")[1] for t in PlatformSecret.objects.values_list("ciphertext", flat=True)}
    assert key_ids == {_key_id(old_key)}

    # Without the old key nothing can be read: the key really matters.
    _set_keys(settings, new_key)
    with pytest.raises(ServiceUnavailable):
        platform_secrets.reveal_secret(ios, cli_actor)

    _set_keys(settings, f"{new_key},{old_key}")
    with commit():
        result = rekey(batch_size=3)  # several batches
    assert (result.total, result.rekeyed, result.failed) == (4, 4, [])
    key_ids = {t.split(":")[1] for t in PlatformSecret.objects.values_list("ciphertext", flat=True)}
    assert key_ids == {_key_id(new_key)}

    _set_keys(settings, [new_key])
    for platform in (ios, web):
        assert platform_secrets.reveal_secret(platform, cli_actor) == current[platform.pk]
        assert _verifies(platform, current[platform.pk])
        assert _verifies(platform, previous[platform.pk])
        assert _start(platform, {"userId": "7", "signed": sign(current[platform.pk], "7")}).trusted
    assert verification.sign_for("acme", "web", "7") == sign(current[web.pk], "7")

    again = rekey()
    assert (again.total, again.rekeyed, again.failed) == (4, 0, [])


def test_rekey_reports_undecryptable_rows_without_changing_them(settings, space, cli_actor):
    old_key, new_key, lost_key = generate_key(), generate_key(), generate_key()
    _set_keys(settings, old_key)
    ios = PlatformFactory(space=space, kind="ios")
    web = PlatformFactory(space=space, kind="web")
    roku = PlatformFactory(space=space, kind="roku")
    roku_secret = _secret(roku, cli_actor)
    # web's row now holds ios's ciphertext (bound to ios); roku's row a lost key's token.
    _current_rows(web).update(ciphertext=_current_rows(ios).get().ciphertext)
    lost_token = KeyRing([lost_key]).encrypt(
        roku_secret, PlatformSecret.associated_data(roku.pk, _current_rows(roku).get().pk)
    )
    _current_rows(roku).update(ciphertext=lost_token)
    before = dict(PlatformSecret.objects.values_list("pk", "ciphertext"))

    _set_keys(settings, f"{new_key},{old_key}")
    result = rekey()
    assert result.total == 3 and result.rekeyed == 1
    failed = {(pk, platform_id) for pk, platform_id, _reason in result.failed}
    web_row, roku_row = _current_rows(web).get(), _current_rows(roku).get()
    assert failed == {(web_row.pk, web.pk), (roku_row.pk, roku.pk)}
    reasons = " ".join(reason for *_ids, reason in result.failed)
    assert _key_id(lost_key) in reasons
    assert roku_secret not in reasons
    # The failed rows are untouched, the good one moved to the new key.
    assert web_row.ciphertext == before[web_row.pk]
    assert roku_row.ciphertext == before[roku_row.pk]
    assert _current_rows(ios).get().ciphertext.split(":")[1] == _key_id(new_key)
    assert rekey().rekeyed == 0


def test_a_snapshot_prepared_under_one_key_ring_is_decrypted_again_under_the_next(
    settings, platform, cli_actor
):
    """The keys a snapshot holds were decrypted under the process's key ring; once the ring
    is another (new ENCRYPTION_KEYS), the same snapshot object is decrypted again under it,
    never served from what the old ring gave."""
    old_key, new_key = generate_key(), generate_key()
    _set_keys(settings, old_key)
    with pytest.raises(ServiceUnavailable):  # the fixture's secret is under the test key
        _secret(platform, cli_actor)
    _set_keys(settings, f"{old_key},{TEST_ENCRYPTION_KEY}")
    secret = _secret(platform, cli_actor)
    snapshot = lookup.lookup_platform(platform.api_key)
    signature = sign(secret, "7")
    assert verification.verify_signed(snapshot, "7", signature).valid  # prepared: ring one

    _set_keys(settings, new_key)  # a ring that can't read the secret
    with pytest.raises(ServiceUnavailable):
        verification.verify_signed(snapshot, "7", signature)
    _set_keys(settings, f"{new_key},{TEST_ENCRYPTION_KEY}")  # another that can
    assert verification.verify_signed(snapshot, "7", signature).valid
