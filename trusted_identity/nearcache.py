"""Looked-up platforms kept in process memory, each tagged with the generation it was read at.

Session start looks a platform up on every request; even a local-memory cache
pickles and unpickles, and Redis adds a round trip. This layer keeps the
snapshots (ciphertexts only, like the shared cache) in a dict. An entry is
served only while the verification generation it was read at is still the
current one (``services.lookup`` reads the generation from the database at most
every ``LOOKUP_CHECK_INTERVAL`` seconds), so a change committed anywhere empties
it within that interval, whatever the cache backend. Entries also expire after
``LOOKUP_CACHE_TIMEOUT`` seconds. Turn it off with
``TRUSTED_IDENTITY["LOCAL_LOOKUP_CACHE"] = False``. The process's one is the runtime's
(``runtime.current().near_cache``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

MAX_ENTRIES = 10_000


class NearCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, int, Any]] = {}

    def get(self, key: str, generation: int) -> Any:
        """The value kept for ``key`` at ``generation``, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, entry_generation, value = entry
        if entry_generation != generation or expires < time.monotonic():
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: str, value: Any, generation: int, timeout: float) -> None:
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + timeout, generation, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: How long a process remembers that an API key is no platform's. A platform added
#: meanwhile bumps the verification generation, which drops the memory at once; the
#: time bounds it for a row written without the app's services (a fixture, raw SQL).
UNKNOWN_KEY_TTL = 5.0


class UnknownKeys:
    """API keys a lookup found no platform for, each tagged with the generation it was
    read at: the same junk sent again is answered 401 without a query.

    Bounded (emptied when full: a flood of new junk keys is limited per client address
    before it gets here, ``UNKNOWN_KEY_RATE_LIMIT``). The process's one is the
    runtime's (``runtime.current().unknown_keys``).
    """

    def __init__(self, maxsize: int = MAX_ENTRIES) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, int]] = {}

    def known(self, key: str, generation: int) -> bool:
        """Whether ``key`` was found unknown at ``generation``, less than the TTL ago."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        expires, entry_generation = entry
        if entry_generation != generation or expires < time.monotonic():
            self._entries.pop(key, None)
            return False
        return True

    def add(self, key: str, generation: int) -> None:
        with self._lock:
            if len(self._entries) >= self.maxsize:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + UNKNOWN_KEY_TTL, generation)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
