"""The containers the runtime (``trusted_identity.runtime``) is made of: small,
thread-safe, each with ``clear()`` and ``len()``, and no instance of its own at module
level."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TypeVar

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from .conf import app_settings

logger = logging.getLogger("trusted_identity")

T = TypeVar("T")


class Memo:
    """A bounded memo: ``get(key, make, *args)`` is ``make(*args)``, made once per key."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[..., T], *args: Any) -> T:
        try:
            return self._values[key]
        except KeyError:
            pass
        value = make(*args)
        if len(self._values) >= self.maxsize:
            self._values.clear()
        self._values[key] = value
        return value

    def clear(self) -> None:
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)


class ThreadConnections:
    """Each thread's database connection objects, every alias's, found once per thread.

    Django finds a thread's connection through asgiref's ``Local`` on every
    ``connections[alias]``, which costs about a microsecond (most of
    ``close_old_connections``, and of the counts' transaction check); a thread's
    connection objects never change once made (closing one keeps the object), so they
    are made together at a thread's first ask and kept. In a thread running an event
    loop the ``Local`` is per task: there they are looked up each time.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def all(self) -> list[BaseDatabaseWrapper]:
        """This thread's connection objects (made now for the aliases not used yet)."""
        if asyncio._get_running_loop() is not None:
            return connections.all()
        local = self._local
        try:
            return local.all
        except AttributeError:
            found = connections.all()
            local.by_alias = {connection.alias: connection for connection in found}
            local.all = found
            return found

    def get(self, alias: str) -> BaseDatabaseWrapper:
        """This thread's connection object for ``alias``: ``connections[alias]``."""
        if asyncio._get_running_loop() is not None:
            return connections[alias]
        try:
            return self._local.by_alias[alias]
        except AttributeError:
            self.all()
            return self._local.by_alias[alias]

    def clear(self) -> None:
        self._local = threading.local()

    def __len__(self) -> int:
        return len(getattr(self._local, "all", ()))


class Slot:
    """One value, built once under a lock (the key ring). ``value`` is None until built:
    read without the lock where a value already built is all that matters (the hot path
    of session start compares it by identity instead of calling :meth:`get`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value: Any = None

    def get(self, build: Callable[[], T]) -> T:
        value = self.value
        if value is None:
            with self._lock:
                if self.value is None:
                    self.value = build()
                value = self.value
        return value

    def clear(self) -> None:
        with self._lock:
            self.value = None

    def __len__(self) -> int:
        return self.value is not None


#: What reading the generation returns: its value, and the database's clock (Unix time)
#: read in the same query, or None where the database's clock can't be read.
class Generation(NamedTuple):
    """Which state of the database verification was read at: the generation's number, and
    the random token written with it. The number orders changes; the token tells apart
    two databases at the same number (a test run on PostgreSQL, then on SQLite, sharing
    one Redis) and a database restored from a backup that counts again from an older
    number. Shared-cache keys carry both (``str()``: ``"41.9f0c..."``)."""

    value: int
    token: str

    def __str__(self) -> str:
        return f"{self.value}.{self.token}"


#: What this process knows before it has read the generation once.
NO_GENERATION = Generation(-1, "")

GenerationRead = tuple[Generation, float | None]


class GenerationTracker:
    """This process's view of the verification generation, read at most once an interval,
    and of the database's clock.

    Reading it is one primary-key SELECT per process per ``LOOKUP_CHECK_INTERVAL``,
    not per request. While the database can't be read, the last value stands: no
    change can commit then either. The same SELECT reads the database's clock, so
    :meth:`now` is the database's time without a query of its own: this process's
    clock plus the offset measured then, within half the query's round trip. Grace
    ends are written by the database's clock and judged by :meth:`now`, so a host
    whose clock is off stops a revoked secret as promptly as any other.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._value = NO_GENERATION
        self._next_check = 0.0
        #: The database's clock minus this process's, in seconds (0 until measured).
        self.offset = 0.0

    def current(self, read: Callable[[], GenerationRead]) -> Generation:
        if time.monotonic() < self._next_check:
            return self._value
        with self._lock:
            now = time.monotonic()
            if now >= self._next_check:
                try:
                    sent = self._clock()
                    value, database_time = read()
                    received = self._clock()
                except DatabaseError:
                    logger.warning("Trusted Identity could not read the verification generation")
                else:
                    self._value = value
                    if database_time is not None:
                        # The database read its clock between sending and receiving.
                        self.offset = database_time - (sent + received) / 2
                self._next_check = now + float(app_settings.LOOKUP_CHECK_INTERVAL)
        return self._value

    def now(self) -> float:
        """Unix time by the database's clock, as of the last read of the generation."""
        return self._clock() + self.offset

    def expire(self) -> None:
        """Read the generation again on the next lookup (this process made a change)."""
        self._next_check = 0.0

    def clear(self) -> None:
        with self._lock:
            self._value, self._next_check, self.offset = NO_GENERATION, 0.0, 0.0

    def __len__(self) -> int:
        return self._value != NO_GENERATION


class GenerationValue:
    """One value read at a verification generation (the origin index)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation: int | None = None
        self.value: Any = None

    def set(self, generation: int, value: Any) -> None:
        with self._lock:
            self.generation, self.value = generation, value

    def clear(self) -> None:
        self.set(None, None)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.generation is not None


class FailureSampler:
    """At most ``FAILURE_LOG_PER_SECOND`` failures logged per platform, reason, second and
    process: a flood of forged starts writes a bounded number of rows, and a burst keeps
    an example of every reason in it (a few ``malformed`` among many ``no_match``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._second = 0
        self._taken: dict[tuple[int, str], int] = {}

    def take(self, platform_id: int, reason: str, now: float) -> bool:
        second = int(now)
        key = (platform_id, reason)
        with self._lock:
            if second != self._second:
                self._second, self._taken = second, {}
            taken = self._taken.get(key, 0)
            if taken >= app_settings.FAILURE_LOG_PER_SECOND:
                return False
            self._taken[key] = taken + 1
            return True

    def clear(self) -> None:
        with self._lock:
            self._second, self._taken = 0, {}

    def __len__(self) -> int:
        return len(self._taken)


class SeenSet:
    """Keys this process has seen (the alerts raised), so a busy hour asks once."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._keys: set[Hashable] = set()
        self.maxsize = maxsize

    def seen(self, key: Hashable) -> bool:
        return key in self._keys

    def first_time(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            if len(self._keys) >= self.maxsize:
                self._keys.clear()
            self._keys.add(key)
            return True

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()

    def __len__(self) -> int:
        return len(self._keys)


class Throttle:
    """At most one go per key and interval in this process (a JWKS fetch per platform):
    a flood asks the database nothing until the interval has passed."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._next: dict[Hashable, float] = {}
        self.maxsize = maxsize

    def take(self, key: Hashable, interval: float) -> bool:
        """Whether ``key`` may go now; if so, not again for ``interval`` seconds."""
        now = time.monotonic()
        with self._lock:
            if self._next.get(key, 0.0) > now:
                return False
            if len(self._next) >= self.maxsize:
                self._next = {k: t for k, t in self._next.items() if t > now}
            self._next[key] = now + interval
            return True

    def clear(self) -> None:
        with self._lock:
            self._next.clear()

    def __len__(self) -> int:
        return len(self._next)
