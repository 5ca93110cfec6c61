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
