"""Adding to count tables in the database: one multi-row upsert per chunk of rows
(``INSERT ... ON CONFLICT DO UPDATE SET count = count + excluded.count``), so any
number of processes add to the same rows and none of them reads a count first."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connections, router


def connection_for(model):
    """The connection a count table is written through (its router's choice)."""
    return connections[router.db_for_write(model)]


def params_per_statement(connection) -> int:
    """How many parameters one statement may carry (SQLite before 3.32: 999)."""
    return 999 if connection.vendor == "sqlite" else 30_000


def upsert_counts(
    model,
    fields: tuple[str, ...],
    rows: Iterable[tuple],
    insert_only: tuple[str, ...] = (),
    least: tuple[str, ...] = (),
) -> int:
    """Add counts to rows of a count table, as few statements as the parameter limit
    allows: ``INSERT ... VALUES (...), ... ON CONFLICT (primary key) DO UPDATE SET
    count = count + excluded.count`` (SQLite >= 3.24, PostgreSQL). ``rows`` are the
    values of ``fields`` (the primary key's fields, then ``count``, then
    ``insert_only``: set when the row is new, kept when it exists, then ``least``: the
    smaller of the stored and the new value kept). Statements run."""
    rows = list(rows)
    if not rows:
        return 0
    connection = connection_for(model)
    quote, meta = connection.ops.quote_name, model._meta
    all_fields = [meta.get_field(name) for name in (*fields, "count", *insert_only, *least)]
    table = quote(meta.db_table)
    columns = ", ".join(quote(f.column) for f in all_fields)
    keys = ", ".join(quote(f.column) for f in meta.pk_fields)
    count = quote(meta.get_field("count").column)
    updates = [f"{count} = {table}.{count} + excluded.{count}"] + [
        f"{c} = CASE WHEN excluded.{c} < {table}.{c} THEN excluded.{c} ELSE {table}.{c} END"
        for c in (quote(meta.get_field(name).column) for name in least)
    ]
    per_statement = max(1, params_per_statement(connection) // len(all_fields))
    placeholder = "(" + ", ".join(["%s"] * len(all_fields)) + ")"
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params = [
                f.get_db_prep_value(value, connection)
                for row in chunk
                for f, value in zip(all_fields, row, strict=True)
            ]
            cursor.execute(  # names from the model, quoted; every value is a parameter
                f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
                f"{', '.join([placeholder] * len(chunk))} ON CONFLICT ({keys}) "
                f"DO UPDATE SET {', '.join(updates)}",
                params,
            )
            statements += 1
    return statements
