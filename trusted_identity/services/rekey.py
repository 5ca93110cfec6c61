"""Re-encrypting every stored secret under the first encryption key (``rekey``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connections, router, transaction

from ..crypto import DecryptionError
from ..keyring import get_key_ring
from ..models import PlatformSecret
from .lookup import verification_changed


@dataclass
class RekeyResult:
    total: int = 0
    rekeyed: int = 0
    failed: list[tuple[int, int, str]] = field(default_factory=list)  # (row, platform, reason)


def _replace_ciphertexts(changes: list[tuple[str, int, str]]) -> None:
    """``(new, pk, old)``: set each row's ciphertext, only where it is still ``old``.

    One parameterised UPDATE run with ``executemany`` (pipelined by psycopg 3);
    Django's ``bulk_update`` builds a CASE expression per row and costs more in
    Python than the database spends on the whole batch. The ``old`` condition
    leaves a row alone if something else re-encrypted it meanwhile.
    """
    connection = connections[router.db_for_write(PlatformSecret)]
    table = connection.ops.quote_name(PlatformSecret._meta.db_table)
    column = connection.ops.quote_name("ciphertext")
    key = connection.ops.quote_name(PlatformSecret._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {column} = %s WHERE {key} = %s AND {column} = %s",  # noqa: S608
            changes,
        )


def rekey(batch_size: int = 500) -> RekeyResult:
    """Re-encrypt every secret not under the first key, in batches.

    Idempotent and resumable: rows already under the first key are skipped, and
    each batch commits on its own. Rows that can't be decrypted are reported,
    never changed.
    """
    ring = get_key_ring()
    primary = ring.primary_key_id
    result = RekeyResult()
    last_pk = 0
    while True:
        batch = list(
            PlatformSecret.objects.filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", "platform_id", "ciphertext")[:batch_size]
        )
        if not batch:
            break
        last_pk = batch[-1][0]
        result.total += len(batch)
        stale = []
        for pk, platform_id, ciphertext in batch:
            try:
                if ring.key_id_of(ciphertext) == primary:
                    continue
                ad = PlatformSecret.associated_data(platform_id, pk)
                token = ring.encrypt(ring.decrypt(ciphertext, ad), ad)
                stale.append((pk, platform_id, ciphertext, token))
            except DecryptionError as exc:
                result.failed.append((pk, platform_id, str(exc)))
        if stale:
            with transaction.atomic():
                _replace_ciphertexts([(token, pk, old) for pk, _, old, token in stale])
                verification_changed()
            result.rekeyed += len(stale)
    return result
