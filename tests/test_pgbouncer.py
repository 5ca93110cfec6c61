"""The suite's run through PgBouncer in transaction pooling (``make test-pgbouncer``,
tests/pgbouncer.py) really goes through it, with Django set for it.

Large sites put PgBouncer in front of PostgreSQL; in transaction pooling each
transaction may run on another server session, so nothing may outlive a transaction:
no named (server-side) cursor, no prepared statement, no session-level advisory lock
or ``SET``. The app takes only transaction-level advisory locks
(``pg_advisory_xact_lock``, released at commit). Skipped outside that run.
"""

from __future__ import annotations

import os

import pytest
from django.db import connection, transaction

from trusted_identity.models import Space
from trusted_identity.services import spaces

PORT = os.environ.get("TEST_PGBOUNCER_PORT")
behind_pgbouncer = pytest.mark.skipif(not PORT, reason="runs behind PgBouncer: make test-pgbouncer")


def _pools() -> list[dict]:
    import psycopg
    from psycopg.rows import dict_row

    user = connection.settings_dict["USER"] or "postgres"
    admin = f"postgres://{user}@127.0.0.1:{PORT}/pgbouncer"
    with psycopg.connect(admin, autocommit=True, row_factory=dict_row) as console:
        return console.execute("SHOW POOLS").fetchall()


def test_the_url_through_pgbouncer_names_the_same_database_and_user():
    from .pgbouncer import through_pgbouncer

    url = through_pgbouncer("postgres://app:pw@db.internal:5432/site?sslmode=disable", 6543)
    assert url == (
        "postgres://app@127.0.0.1:6543/site?sslmode=disable&disable_server_side_cursors=True"
    )
    # ... which the example project's DATABASE_URL reading (django-environ) turns into:
    import environ

    config = environ.Env.db_url_config(url)
    assert config["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert (config["NAME"], config["USER"], config["PORT"]) == ("site", "app", 6543)
    assert config["OPTIONS"] == {"sslmode": "disable"}


def test_the_documented_settings_keep_no_state_in_a_server_session(monkeypatch):
    """docs/deploying.md's settings: no named cursors, no prepared statements."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    from .docs_snippets import snippet

    monkeypatch.setenv("DATABASE_PASSWORD", "pw")
    namespace = {"os": os}
    exec(snippet("pgbouncer-settings"), namespace)
    database = namespace["DATABASES"]["default"]
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
    wrapper = DatabaseWrapper({**database, "OPTIONS": {}, "TIME_ZONE": None, "AUTOCOMMIT": True})
    params = wrapper.get_connection_params()
    assert params["prepare_threshold"] is None
    assert (params["host"], params["port"]) == ("pgbouncer.internal", 6432)


@behind_pgbouncer
@pytest.mark.postgres
@pytest.mark.django_db
def test_the_test_database_is_reached_through_pgbouncer_in_transaction_pooling():
    connection.ensure_connection()
    assert connection.settings_dict["PORT"] == int(PORT)
    [pool] = [p for p in _pools() if p["database"] == connection.settings_dict["NAME"]]
    assert pool["pool_mode"] == "transaction"
    assert pool["cl_active"] >= 1  # this test's connection, in its transaction


@behind_pgbouncer
@pytest.mark.postgres
def test_django_keeps_no_state_in_a_server_session():
    """No named cursors (``.iterator()``), no prepared statements (psycopg 3's
    ``prepare_threshold``: Django leaves it None unless OPTIONS sets it)."""
    assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert "prepare_threshold" not in connection.settings_dict["OPTIONS"]
    assert connection.get_connection_params()["prepare_threshold"] is None


@behind_pgbouncer
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_iterating_over_many_transactions_behind_the_pooler():
    """What a named cursor would break: rows read with ``.iterator()`` across the
    transactions of other work (autocommit), each transaction maybe on another server
    session; and the same statement many times (what psycopg would prepare)."""
    for n in range(30):
        spaces.create_space(f"pool-{n}")
    seen = []
    for space in Space.objects.order_by("slug").iterator(chunk_size=4):
        seen.append(space.slug)
        with transaction.atomic():
            assert Space.objects.filter(slug=space.slug).exists()
    assert seen == sorted(f"pool-{n}" for n in range(30))
