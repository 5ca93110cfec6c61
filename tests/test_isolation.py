"""What keeps two test runs at once, and the workers of one run, apart
(tests/isolation.py): their own Redis keys, ports and test databases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from . import isolation


def test_a_free_port_can_be_bound():
    port = isolation.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # nothing holds it
    assert 1024 <= port <= 65535


def test_clearing_a_namespace_leaves_every_other_key(redis_namespace):
    import redis

    other = isolation.RedisNamespace()
    with redis.Redis.from_url(isolation.REDIS_URL) as client:
        client.set(f"{redis_namespace.prefix}:1:a", "mine")
        client.set(f"{other.prefix}:1:a", "another run's")
        client.set("not-a-test-key", "someone's", ex=60)
        try:
            redis_namespace.clear()
            assert redis_namespace.keys() == []
            assert client.get(f"{other.prefix}:1:a") == b"another run's"
            assert client.get("not-a-test-key") == b"someone's"
        finally:
            other.clear()
            client.delete("not-a-test-key")


def test_a_redis_cache_is_emptied_under_its_prefix_only(redis_namespace):
    cache = RedisCache(redis_namespace.location, {"KEY_PREFIX": redis_namespace.prefix})
    neighbour = isolation.RedisNamespace()
    other = RedisCache(neighbour.location, {"KEY_PREFIX": neighbour.prefix})
    cache.set("k", 1)
    other.set("k", 2)
    try:
        isolation.clear_cache(cache)
        assert (cache.get("k"), other.get("k")) == (None, 2)
    finally:
        neighbour.clear()
    # FLUSHDB would empty every run's keys: a Redis cache without a prefix is refused.
    with pytest.raises(RuntimeError, match="KEY_PREFIX"):
        isolation.clear_cache(RedisCache(redis_namespace.location, {}))


@pytest.mark.django_db
def test_this_runs_test_database_is_named_for_the_run_and_the_worker(request, worker_id):
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        assert connection.is_in_memory_db()  # each process its own
        return
    assert f"_{isolation.run_suffix(request.config)}" in name
    if worker_id != "master":
        assert name.endswith(f"_{worker_id}")


@pytest.mark.postgres
@pytest.mark.django_db
def test_test_databases_of_dead_runs_are_dropped_and_live_ones_kept():
    if connection.vendor != "postgresql":
        pytest.skip("test databases on a server: make test-postgres")
    base = f"{connection.settings_dict['NAME']}_probe"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead = f"{base}_r{int(ended.stdout)}_gw0"
    live = f"{base}_r{os.getpid()}_gw0"
    with connection._nodb_cursor() as cursor:
        for name in (dead, live):
            cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        assert isolation.drop_stale_test_databases("default", base) == [dead]
        with connection._nodb_cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [base + "%"])
            assert [row[0] for row in cursor.fetchall()] == [live]
    finally:
        with connection._nodb_cursor() as cursor:
            for name in (dead, live):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
