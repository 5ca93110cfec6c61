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

from django.db import IntegrityError, connections, router, transaction

from . import runtime
from .models import VerificationGeneration
from .state import Generation


def _read_generation() -> Generation:
    row = (
        VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON)
        .values_list("value", "token")
        .first()
    )
    return Generation(*row) if row else ensure_generation()


def ensure_generation() -> Generation:
    """The generation row, made with a random token where it is missing (a database
    flushed by a test, or never changed since its tables were made): never a state that
    another database could share."""
    rows = VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON)
    try:
        with transaction.atomic():
            rows.get_or_create(defaults={"token": VerificationGeneration.new_token()})
    except IntegrityError:
        pass  # made meanwhile by another process
    value, token = rows.values_list("value", "token").get()
    return Generation(value, token)


#: The database's clock as a Unix time with sub-second precision, by vendor: PostgreSQL's
#: wall clock (not the transaction's start), SQLite's (milliseconds; its own process's,
#: so every process of one host), MySQL's. Another vendor: this process's clock.
_DATABASE_CLOCK = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())",
    "sqlite": "(julianday('now') - 2440587.5) * 86400.0",
    "mysql": "UNIX_TIMESTAMP(NOW(6))",
}


def read_generation_and_clock() -> tuple[Generation, float | None]:
    """The verification generation and the database's clock (Unix time), in one tiny
    query; the clock is None where its spelling for the database is not known."""
    connection = connections[router.db_for_read(VerificationGeneration)]
    clock = _DATABASE_CLOCK.get(connection.vendor)
    if clock is None:
        return _read_generation(), None
    quote = connection.ops.quote_name
    table, value, token, key = (
        quote(VerificationGeneration._meta.db_table), quote("value"), quote("token"),
        quote("id"),
    )  # fmt: skip
    with connection.cursor() as cursor:
        # Names quoted from the model and a fixed clock expression: nothing from outside.
        cursor.execute(
            f"SELECT (SELECT {value} FROM {table} WHERE {key} = %s), "  # noqa: S608
            f"(SELECT {token} FROM {table} WHERE {key} = %s), {clock}",
            [VerificationGeneration.SINGLETON, VerificationGeneration.SINGLETON],
        )
        number, tag, now = cursor.fetchone()
    generation = Generation(number, tag) if number is not None else ensure_generation()
    return generation, float(now)


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
