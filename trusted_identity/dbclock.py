"""The database's clock: the one clock grace ends are written and judged by.

Rotations and revocations write a grace's end as :func:`database_now`; every serving
process judges it by :func:`database_time`, its own clock plus the offset to the
database's measured when it last read the verification generation
(:func:`read_generation_and_clock`: the same tiny query, at most once per
``LOOKUP_CHECK_INTERVAL``). So no host's clock decides when a revoked secret stops: a
host 20 s behind stops it as promptly as any other.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import connections, router

from . import runtime
from .models import VerificationGeneration


def _read_generation() -> int:
    value = (
        VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON)
        .values_list("value", flat=True)
        .first()
    )
    return value or 0


#: The database's clock as a Unix time with sub-second precision, by vendor: PostgreSQL's
#: wall clock (not the transaction's start), SQLite's (milliseconds; its own process's,
#: so every process of one host), MySQL's. Another vendor: this process's clock.
_DATABASE_CLOCK = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())",
    "sqlite": "(julianday('now') - 2440587.5) * 86400.0",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",
}


def read_generation_and_clock() -> tuple[int, float | None]:
    """The verification generation and the database's clock (Unix time), in one tiny
    query; the clock is None where its spelling for the database is not known."""
    connection = connections[router.db_for_read(VerificationGeneration)]
    clock = _DATABASE_CLOCK.get(connection.vendor)
    if clock is None:
        return _read_generation(), None
    quote = connection.ops.quote_name
    table, value, key = (
        quote(VerificationGeneration._meta.db_table), quote("value"), quote("id")
    )  # fmt: skip
    with connection.cursor() as cursor:
        # Names quoted from the model and a fixed clock expression: nothing from outside.
        cursor.execute(
            f"SELECT (SELECT {value} FROM {table} WHERE {key} = %s), {clock}",  # noqa: S608
            [VerificationGeneration.SINGLETON],
        )
        generation, now = cursor.fetchone()
    return generation or 0, float(now)


def database_time() -> float:
    """Now as a Unix time by the database's clock: this process's clock corrected by the
    offset measured at the last read of the generation (no query). What grace ends,
    written by :func:`database_now`, are judged by, on every serving process."""
    return runtime.current().generation.now()


def database_now() -> datetime:
    """Now by the database's clock, read from it (one query): the moment rotations and
    revocations write as grace ends, so that no host's clock decides when they end."""
    connection = connections[router.db_for_write(VerificationGeneration)]
    clock = _DATABASE_CLOCK.get(connection.vendor)
    if clock is None:
        return datetime.now(dt_timezone.utc)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {clock}")
        (now,) = cursor.fetchone()
    return datetime.fromtimestamp(float(now), tz=dt_timezone.utc)
