"""A per-process layer in front of the shared platform cache, kept honest by Redis pub/sub.

Session start looks a platform up on every request. The shared cache (Redis)
spares the database, but a Redis round trip still costs more than the rest of
the request. This layer keeps looked-up snapshots (ciphertexts only, like the
shared cache) in process memory, and is only used while a listener thread is
subscribed to the invalidation channel of the same Redis:

- every write that changes what verification sees deletes the shared entry and
  then publishes the platform's cache key on the channel; each process's
  listener drops it at once;
- a snapshot read while an invalidation arrived is not kept (generation check);
- a lost or silent subscription (no answer to a ping) empties the layer and
  turns it off until the listener is subscribed again;
- entries also expire after ``LOOKUP_CACHE_TIMEOUT`` seconds.

With any other cache backend (local memory, a single process) the layer is off.
Turn it off with ``TRUSTED_IDENTITY["LOCAL_LOOKUP_CACHE"] = False``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from .conf import app_settings

logger = logging.getLogger("trusted_identity")

MAX_ENTRIES = 10_000
PING_EVERY = 5.0  # seconds of silence before the listener pings Redis
DEAD_AFTER = 15.0  # seconds without any message or pong: the subscription is lost


class NearCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any]] = {}
        self._generation = 0
        self._healthy = False
        self._epoch = 0  # bumped by reset(): a listener of an older epoch stops
        self._thread: threading.Thread | None = None
        self._pid = 0

    # -- the shared cache this layer sits in front of

    @staticmethod
    def _backend() -> RedisCache | None:
        if not app_settings.LOCAL_LOOKUP_CACHE:
            return None
        cache = caches[app_settings.CACHE_ALIAS]
        return cache if isinstance(cache, RedisCache) else None

    @staticmethod
    def _channel(cache: RedisCache) -> str:
        return cache.make_key("trusted_identity:invalidate")

    # -- reads

    def get(self, key: str) -> Any:
        if not self._healthy:
            self._ensure_listener()
            return None
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            self._entries.pop(key, None)
            return None
        return value

    def generation(self) -> int:
        return self._generation

    def put(self, key: str, value: Any, generation: int) -> None:
        """Keep ``value`` unless an invalidation arrived since ``generation`` was read."""
        with self._lock:
            if not self._healthy or self._generation != generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + app_settings.LOOKUP_CACHE_TIMEOUT, value)

    # -- invalidation

    def drop(self, keys: list[str]) -> None:
        with self._lock:
            self._generation += 1
            for key in keys:
                self._entries.pop(key, None)

    def publish(self, keys: list[str]) -> None:
        """Tell every process sharing the cache to drop ``keys`` (this one included)."""
        self.drop(keys)
        cache = self._backend()
        if cache is None or not keys:
            return
        try:
            cache._cache.get_client(write=True).publish(self._channel(cache), "\n".join(keys))
        except Exception:
            logger.warning("Trusted Identity could not publish a cache invalidation")

    def reset(self) -> None:
        """Forget everything and restart the listener (settings changed, tests)."""
        with self._lock:
            self._epoch += 1
            self._healthy = False
            self._generation += 1
            self._entries.clear()
            self._thread = None

    def _fail(self) -> None:
        with self._lock:
            self._healthy = False
            self._generation += 1
            self._entries.clear()

    # -- the listener

    def _ensure_listener(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        cache = self._backend()
        if cache is None:
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._listen,
                args=(cache, self._epoch),
                name="trusted-identity-invalidations",
                daemon=True,
            )
            self._thread.start()

    def _listen(self, cache: RedisCache, epoch: int) -> None:
        while self._epoch == epoch:
            pubsub = None
            try:
                pubsub = cache._cache.get_client(write=True).pubsub()
                pubsub.subscribe(self._channel(cache))
                last_heard = last_ping = time.monotonic()
                while self._epoch == epoch:
                    message = pubsub.get_message(timeout=1.0)
                    now = time.monotonic()
                    if message is None:
                        if now - last_heard > DEAD_AFTER:
                            raise ConnectionError(
                                "no answer from Redis on the invalidation channel"
                            )
                        if now - last_ping > PING_EVERY:
                            pubsub.ping()
                            last_ping = now
                        continue
                    last_heard = now
                    if message["type"] == "subscribe":
                        with self._lock:
                            self._generation += 1
                            self._entries.clear()
                            self._healthy = self._epoch == epoch
                    elif message["type"] == "message":
                        data = message["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        self.drop(text.split("\n"))
            except Exception:
                if self._epoch == epoch:
                    logger.warning("Trusted Identity invalidation listener lost Redis; retrying")
                self._fail()
                time.sleep(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()


near_cache = NearCache()
