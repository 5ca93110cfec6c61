"""The statements a flush runs besides the upserts, written once as plain SQL.

Every flush asks which of its platforms still exist, reads the stored version slots of
its days (``countwrites.merge_version_slots``) and the distinct-user sketches of its
(platform, day, kind) keys, and writes back each changed sketch if its ``revision`` is
still the one read (``countwrites.write_distinct``); one that counted starts verified
by a secret reads which of them were retired, and when
(``secretwrites.write_secret_uses``). Built through the ORM, these lookups (IN lists,
a composite primary key, a conditional update) cost about two milliseconds of Python
a flush, several times what the database spends on them, and a session start counted
inside a transaction pays that every time. So they are written here from the models'
own table and column names, every value a parameter, as ``upserts`` does for the
count tables; the rows they read come back as the ORM gave them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import DailyDetailCount, DistinctUsers, Platform, PlatformSecret
from .upserts import connection_for, params_per_statement

#: A row of ``DistinctUsers``: platform id, day, kind (``DistinctUsers.kind``).
DistinctKey = tuple[int, date, str]


def _names(connection, model, *fields: str) -> tuple[str, list[str]]:
    """The model's quoted table name and the quoted columns of ``fields``."""
    quote, meta = connection.ops.quote_name, model._meta
    return quote(meta.db_table), [quote(meta.get_field(name).column) for name in fields]


def _as_date(value: date | str) -> date:
    """A day as the cursor gives it: a ``date`` (PostgreSQL, and SQLite through
    Django's connection, which parses declared types), else its ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def _as_moment(value: datetime | str, connection) -> datetime:
    """A moment as the ORM gives it: parsed if the cursor left it text, and made aware in
    the connection's zone when ``USE_TZ`` is on and the driver gave none (SQLite)."""
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is None:
        raise ValueError(f"not a moment: {value!r}")
    if settings.USE_TZ and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, connection.timezone)
    return moment


def _chunks(values: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def existing_platforms(ids: Iterable[int]) -> set[int]:
    """Which of ``ids`` still name a platform: one ``SELECT`` per few hundred ids."""
    ids = sorted(set(ids))
    if not ids:
        return set()
    connection = connection_for(Platform)
    table, (pk,) = _names(connection, Platform, Platform._meta.pk.name)
    found: set[int] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(ids, params_per_statement(connection)):
            cursor.execute(  # names from the model, quoted; every value is a parameter
                f"SELECT {pk} FROM {table} WHERE {pk} IN ({', '.join(['%s'] * len(chunk))})",  # noqa: S608
                list(chunk),
            )
            found.update(row[0] for row in cursor.fetchall())
    return found


def retired_moments(secret_ids: Iterable[int]) -> dict[int, datetime]:
    """When each of ``secret_ids`` that was retired was (``PlatformSecret.retired_at``),
    by id; a secret still current or deleted is left out."""
    ids = sorted(set(secret_ids))
    if not ids:
        return {}
    connection = connection_for(PlatformSecret)
    table, (pk, retired_at) = _names(
        connection, PlatformSecret, PlatformSecret._meta.pk.name, "retired_at"
    )
    found: dict[int, datetime] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(ids, params_per_statement(connection)):
            cursor.execute(  # names from the model, quoted; every value is a parameter
                f"SELECT {pk}, {retired_at} FROM {table} "  # noqa: S608
                f"WHERE {retired_at} IS NOT NULL AND {pk} IN ({', '.join(['%s'] * len(chunk))})",
                list(chunk),
            )
            for secret_id, moment in cursor.fetchall():
                found[secret_id] = _as_moment(moment, connection)
    return found


def read_version_rows(
    groups: Iterable[tuple[int, date, str]],
) -> list[tuple[int, date, str, str, str, int, int]]:
    """The stored version rows (``DailyDetailCount``) of the given (platform, day,
    dimension) groups: ``(platform_id, day, dimension, value, outcome, count,
    max_error)``. One ``SELECT`` over the groups' platforms, days and dimensions (their
    cross product, as few as a flush names), filtered back to the groups."""
    groups = set(groups)
    if not groups:
        return []
    connection = connection_for(DailyDetailCount)
    table, columns = _names(
        connection, DailyDetailCount,
        "platform", "day", "dimension", "value", "outcome", "count", "max_error",
    )  # fmt: skip
    day_field = DailyDetailCount._meta.get_field("day")
    platforms = sorted({g[0] for g in groups})
    days = [day_field.get_db_prep_value(day, connection) for day in sorted({g[1] for g in groups})]
    dimensions = sorted({g[2] for g in groups})
    rows = []
    with connection.cursor() as cursor:
        per_statement = params_per_statement(connection) - len(days) - len(dimensions)
        for chunk in _chunks(platforms, max(1, per_statement)):
            values = [*chunk, *days, *dimensions]
            cursor.execute(  # names from the model, quoted; every value is a parameter
                f"SELECT {', '.join(columns)} FROM {table} "  # noqa: S608
                f"WHERE {columns[0]} IN ({', '.join(['%s'] * len(chunk))}) "
                f"AND {columns[1]} IN ({', '.join(['%s'] * len(days))}) "
                f"AND {columns[2]} IN ({', '.join(['%s'] * len(dimensions))})",
                values,
            )
            for platform_id, day, dimension, *rest in cursor.fetchall():
                row = (platform_id, _as_date(day), dimension, *rest)
                if row[:3] in groups:
                    rows.append(row)
    return rows


def _key_params(connection, key: DistinctKey) -> list:
    """A distinct-user key's values as the database takes them."""
    platform_id, day, kind = key
    day_field = DistinctUsers._meta.get_field("day")
    return [platform_id, day_field.get_db_prep_value(day, connection), kind]


def read_sketches(keys: Iterable[DistinctKey]) -> dict[DistinctKey, tuple[bytes, int]]:
    """The stored sketch and revision of each of ``keys`` that has a row, by key: one
    ``SELECT ... WHERE (platform_id, day, kind) IN (...)`` per few hundred keys."""
    keys = list(keys)
    if not keys:
        return {}
    connection = connection_for(DistinctUsers)
    table, columns = _names(
        connection, DistinctUsers, "platform", "day", "kind", "sketch", "revision"
    )
    row_key = ", ".join(columns[:3])
    wanted = set(keys)
    found: dict[DistinctKey, tuple[bytes, int]] = {}
    with connection.cursor() as cursor:
        for chunk in _chunks(keys, max(1, params_per_statement(connection) // 3)):
            cursor.execute(  # names from the model, quoted; every value is a parameter
                f"SELECT {', '.join(columns)} FROM {table} "  # noqa: S608
                f"WHERE ({row_key}) IN ({', '.join(['(%s, %s, %s)'] * len(chunk))})",
                [value for key in chunk for value in _key_params(connection, key)],
            )
            for platform_id, day, kind, data, revision in cursor.fetchall():
                key = (platform_id, _as_date(day), kind)
                if key in wanted:
                    found[key] = (bytes(data), revision)
    return found


def replace_sketch(key: DistinctKey, data: bytes, revision: int) -> bool:
    """Write ``data`` as ``key``'s sketch at ``revision + 1``, only if its row is still at
    ``revision`` (a compare-and-set); whether it was written."""
    connection = connection_for(DistinctUsers)
    table, (*key_columns, sketch, revision_column) = _names(
        connection, DistinctUsers, "platform", "day", "kind", "sketch", "revision"
    )
    prepared = DistinctUsers._meta.get_field("sketch").get_db_prep_value(data, connection)
    where = " AND ".join(f"{column} = %s" for column in key_columns)
    with connection.cursor() as cursor:
        cursor.execute(  # names from the model, quoted; every value is a parameter
            f"UPDATE {table} SET {sketch} = %s, {revision_column} = %s "  # noqa: S608
            f"WHERE {where} AND {revision_column} = %s",
            [prepared, revision + 1, *_key_params(connection, key), revision],
        )
        return cursor.rowcount == 1
