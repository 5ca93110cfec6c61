"""What keeps test runs apart: two runs at once on one machine (two checkouts, each
``make test``), and the pytest-xdist workers of one run.

- **Databases**: pytest-django gives each worker its own test database (``_gw0``...);
  on a server (PostgreSQL) the name also carries the run (:func:`run_suffix`), so two
  runs never create, use or drop each other's. SQLite's test databases are in memory.
- **Redis**: every test that needs it gets a key prefix of its own
  (:class:`RedisNamespace`) and deletes only its own keys, never ``FLUSHDB``.
- **Ports**: servers bind a port the system found free (:func:`free_port`), never one
  from a fixed range another run may hold.
- **Files**: ``tmp_path`` (pytest's, per worker and per run).
"""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
import uuid

import pytest

#: The Redis the tests use; its db number is shared, the key prefixes are not.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")


def free_port() -> int:
    """A loopback port nothing listens on now (the system's pick, not a fixed range)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_suffix(config: pytest.Config) -> str:
    """This run's mark, the same in all its workers: ``r`` and the controlling pytest's
    process id (unique among the runs alive on this machine; a stale database of a run
    that died is told by its process being gone)."""
    workerinput = getattr(config, "workerinput", None)
    pid = workerinput["ti_run_pid"] if workerinput else os.getpid()
    return f"r{pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_stale_test_databases(alias: str, base: str) -> list[str]:
    """Drop the test databases (``base_r<pid>...``) of runs on this machine whose pytest
    is gone (killed before pytest-django's teardown). Only on a server on loopback: a
    process id says nothing about another machine's runs. The names it dropped."""
    from django.db import connections

    connection = connections[alias]
    host = connection.settings_dict.get("HOST") or ""
    if connection.vendor != "postgresql" or not (
        host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")
    ):
        return []
    pattern = re.compile(rf"^{re.escape(base)}_r(\d+)(_.*)?$")
    like = base.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "\\_r%"
    dropped = []
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [like])
        for (name,) in cursor.fetchall():
            found = pattern.match(name)
            if found and not _alive(int(found[1])):
                quoted = connection.ops.quote_name(name)
                cursor.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
                dropped.append(name)
    return dropped


def end_pooled_sessions() -> None:
    """End every server session on this process's test databases but Django's own (a
    pooler's idle ones), so that they can be dropped."""
    from django.db import connections

    for connection in connections.all():
        if connection.vendor != "postgresql":
            continue
        connection.close()
        with connection._nodb_cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [connection.settings_dict["NAME"]],
            )


def redis_up() -> bool:
    address = urllib.parse.urlsplit(REDIS_URL)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address.hostname, address.port or 6379)) == 0


def need_redis() -> None:
    """Skip without Redis; fail instead when CI is set (.ci/run starts Redis)."""
    if not redis_up():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not running at {REDIS_URL} (.ci/run starts it)")
        pytest.skip(f"Redis is not running at {REDIS_URL}")


class RedisNamespace:
    """A key prefix of this test's own in the tests' Redis db."""

    def __init__(self) -> None:
        self.prefix = f"ti-test-{uuid.uuid4().hex}"
        self.location = REDIS_URL
        #: For CACHE_URL in a served project (project/settings.py reads ``key_prefix``).
        self.cache_url = f"{REDIS_URL}?key_prefix={self.prefix}"

    def cache_settings(self) -> dict:
        """A CACHES entry for Django in this process."""
        return {
            "BACKEND": "project.cache.ReusingRedisCache",
            "LOCATION": self.location,
            "KEY_PREFIX": self.prefix,
        }

    def keys(self) -> list[bytes]:
        import redis

        with redis.Redis.from_url(self.location) as client:
            return list(client.scan_iter(match=_pattern(self.prefix), count=1000))

    def clear(self) -> None:
        """Delete this namespace's keys, and no one else's."""
        import redis

        with redis.Redis.from_url(self.location) as client:
            _delete_matching(client, _pattern(self.prefix))


def _pattern(prefix: str) -> str:
    """Redis's glob for every key Django's cache makes under ``prefix``."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return f"{escaped}:*"


def _delete_matching(client, pattern: str) -> None:
    while batch := list(client.scan_iter(match=pattern, count=1000)):
        client.delete(*batch)


def clear_cache(cache) -> None:
    """Empty a Django cache; a Redis one only under its own key prefix, as ``clear()``
    would empty the whole db another run or worker shares (``FLUSHDB``)."""
    from django.core.cache.backends.redis import RedisCache

    if not isinstance(cache, RedisCache):
        cache.clear()
        return
    if not cache.key_prefix:
        raise RuntimeError("a Redis cache in the tests needs a KEY_PREFIX of its own")
    _delete_matching(cache._cache.get_client(write=True), _pattern(cache.key_prefix))
