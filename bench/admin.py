"""``make bench`'s ``admin`` and ``bulk`` sections: the admin's queries and times as rows
grow, and bulk rotation and re-keying with their peak memory."""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
import tracemalloc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trusted_identity.services.rekey import RekeyResult

# ------------------------------------------------------------------------- admin


def _count_queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries.captured_queries)


def bench_admin(quick: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trusted_identity.models import PlatformKind, Space
    from trusted_identity.services.spaces import add_platform, create_space

    user_model = get_user_model()
    admin_user = user_model.objects.create_superuser("bench-admin", "b@example.com", "x")
    client = Client()
    client.force_login(admin_user)

    few = create_space("admin-few")
    for kind in PlatformKind.values[:2]:
        add_platform(few, kind)
    many = create_space("admin-many")
    for kind in PlatformKind.values:
        add_platform(many, kind)

    def settings_url(space) -> str:
        return f"/admin/trusted_identity/space/{space.pk}/trusted-identity/"

    result = {
        "settings_page_queries_2_platforms": _count_queries(client, settings_url(few)),
        "settings_page_queries_6_platforms": _count_queries(client, settings_url(many)),
    }
    result["space_list_queries_few_spaces"] = _count_queries(
        client, "/admin/trusted_identity/space/"
    )

    total = 1000
    existing = Space.objects.count()
    Space.objects.bulk_create(
        [Space(slug=f"bulk-{n}", name=f"Bulk {n}") for n in range(total - existing)]
    )
    result["space_list_queries_1000_spaces"] = _count_queries(
        client, "/admin/trusted_identity/space/"
    )
    timings = []
    for _ in range(3 if quick else 7):
        start = time.perf_counter()
        response = client.get("/admin/trusted_identity/space/?all=")
        timings.append(time.perf_counter() - start)
        assert response.status_code == 200
        rows = response.content.count(b'name="_selected_action"')  # a checkbox a row
        assert rows == total, f"Show all rendered {rows} rows, not {total}"
    result["space_list_1000_spaces_ms"] = round(statistics.median(timings) * 1000, 1)
    result["space_list_rows_rendered"] = rows
    return result


# -------------------------------------------------------------------------- bulk


def bench_bulk(quick: bool) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from trusted_identity.crypto import generate_key
    from trusted_identity.keyring import get_key_ring
    from trusted_identity.models import Platform, PlatformSecret, Space
    from trusted_identity.services.spaces import add_platform

    result: dict = {}
    count = 200 if quick else 1000
    spaces = Space.objects.bulk_create([Space(slug=f"rot-{n}", name=f"R{n}") for n in range(count)])
    for space in spaces:
        add_platform(space, "web")
    ids = list(Platform.objects.filter(space__in=spaces).values_list("pk", flat=True))
    user_model = get_user_model()
    admin_user = user_model.objects.filter(
        is_superuser=True
    ).first() or user_model.objects.create_superuser("bulk-admin", "a@example.com", "x")
    client = Client()
    client.force_login(admin_user)
    tracemalloc.start()
    start = time.perf_counter()
    # "Select all N platforms" in the changelist, as a person would with this many
    # (a POST naming 1,000 ids is over Django's DATA_UPLOAD_MAX_NUMBER_FIELDS).
    response = client.post(
        "/admin/trusted_identity/platform/?q=rot-",
        {
            "action": "rotate_secrets",
            "select_across": "1",
            "index": "0",
            "_selected_action": ids[:1],
            "post": "yes",
            "grace": "0",
        },
    )
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert response.status_code in (200, 302), response.status_code
    rotated = PlatformSecret.objects.filter(platform_id__in=ids).count()
    assert rotated >= 2 * len(ids), "the admin action did not rotate every platform"
    result["rotate_platforms"] = len(ids)
    result["rotate_admin_action_s"] = round(elapsed, 2)
    result["rotate_peak_mib"] = round(peak / 2**20, 1)

    # Re-key: enough secrets under the old key, then a new key first in the ring.
    secrets_target = 2_000 if quick else 10_000
    ring = get_key_ring()
    platforms = list(Platform.objects.values_list("pk", flat=True))
    rows, index = [], 0
    existing = PlatformSecret.objects.count()
    now = dt.datetime.now(dt.timezone.utc)
    while existing + len(rows) < secrets_target:
        pid = platforms[index % len(platforms)]
        index += 1
        rows.append(
            PlatformSecret(
                platform_id=pid,
                ciphertext="",  # bound to the row: encrypted once the row has its key
                created_at=now,
                retired_at=now,
                valid_until=now + dt.timedelta(days=1),
            )
        )
    PlatformSecret.objects.bulk_create(rows, batch_size=1000)
    for number, row in enumerate(rows):
        row.ciphertext = ring.encrypt(
            f"tis_web_bench{number}", PlatformSecret.associated_data(row.platform_id, row.pk)
        )
    PlatformSecret.objects.bulk_update(rows, ["ciphertext"], batch_size=1000)
    outcome, elapsed, peak = timed_rekey(generate_key())
    assert not outcome.failed and outcome.rekeyed == outcome.total
    result["rekey_secrets"] = outcome.total
    result["rekey_s"] = round(elapsed, 2)
    result["rekey_peak_mib"] = round(peak / 2**20, 1)
    return result


def timed_rekey(new_key: str) -> tuple[RekeyResult, float, int]:
    """Every secret re-encrypted under ``new_key`` put first in the ring, timed with its
    peak memory; then re-keyed back, untimed, under the key the environment gives.

    The servers of the later sections are started with that environment's key alone:
    left under a key only this process held, every session start they served answered
    503 (the platform's secrets unreadable), and `serving` and `hold` measured those.
    """
    from django.conf import settings
    from django.test.utils import override_settings

    from trusted_identity.services.rekey import rekey

    old_key = os.environ["TRUSTED_IDENTITY_ENCRYPTION_KEYS"]
    ring = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": f"{new_key},{old_key}"}
    with override_settings(TRUSTED_IDENTITY=ring):  # fires setting_changed: a new ring
        tracemalloc.start()
        start = time.perf_counter()
        outcome = rekey(batch_size=500)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    back = {**settings.TRUSTED_IDENTITY, "ENCRYPTION_KEYS": f"{old_key},{new_key}"}
    with override_settings(TRUSTED_IDENTITY=back):
        restored = rekey(batch_size=500)
    assert not restored.failed, restored.failed
    return outcome, elapsed, peak
