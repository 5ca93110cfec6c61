"""Everything the app keeps in a process's memory, in one object with one ``reset()``.

:class:`Runtime` is made by ``TrustedIdentityConfig.ready()`` and owns every piece of
per-process state: the verification generation as last read, the near cache of
looked-up platforms and the origin index, the decrypted keys, the parsed public keys,
the JWKS fetches tried and those running in the background, the site's private keys
and what each signs as, the key ring, the
distinct-user hasher, the token memo, the failure log's sampler, the parsed rates and resolved
authenticators, the alerts this process has seen raised, the buffer of counts not yet
written with the thread that writes them, and the outbox of alerts not yet
delivered. No other module of the app keeps mutable state at module level
(``tests/test_layout.py`` holds it to that), so :meth:`Runtime.reset` (connected to
``setting_changed``, called by ``trusted_identity.testing`` and the test suite)
leaves nothing behind, and a forked child starts from a new runtime.

Who writes the counts is the setting ``COUNT_FLUSH_INTERVAL``:

- ``0``: the caller writes at once, in its own connection (the test settings' choice);
- more: a thread of this process writes every interval (and at exit), so a session
  start never waits for a commit. Where no Python thread runs besides the request's
  (uWSGI without ``enable-threads``), each request writes its own counts, as with
  ``0``: nothing can be held safely between requests there, since uWSGI may end a
  worker without running its exit handlers (seen when the whole process group gets
  SIGTERM, as systemd sends it by default).

Alerts are delivered (the ``rollout_alert`` signal, the owners' e-mail) from the
outbox's own thread, never from the code that writes counts: a slow mail server
never holds counts back. Without threads they go out after the counts are written.
:meth:`Runtime.flush` writes the counts and delivers the alerts pending now, waiting
for any write or delivery in flight; it also runs at exit (``atexit``: gunicorn's sync
and gthread workers leave through ``sys.exit`` on SIGTERM, so a graceful stop writes
every count; ``tests/test_graceful_stop.py``).
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from .conf import app_settings
from .nearcache import NearCache, UnknownKeys
from .state import (
    FailureSampler,
    GenerationTracker,
    GenerationValue,
    Memo,
    SeenSet,
    Slot,
    ThreadConnections,
    Throttle,
)
from .tokens import TokenMemo

logger = logging.getLogger("trusted_identity")


class Batch(Protocol):
    """What the buffer holds (``countwrites.CountBatch``; not imported: the models, which
    the key ring serves, are beneath it)."""

    counts: dict

    def add(self, key: Any, n: int = 1, start: Any = None) -> None: ...
    def update(self, other: Any) -> None: ...
    def copy(self) -> Any: ...
    def __bool__(self) -> bool: ...


#: Writes a batch of counts; what it could not write stays in the batch. Rows written.
CountWriter = Callable[[Any], int]


def python_threads_run() -> bool:
    """Whether a thread of ours gets to run beside the requests.

    Not under uWSGI without ``enable-threads`` (or ``threads``): there the GIL is never
    released to other threads, so the request thread must do the work itself.
    """
    try:
        import uwsgi  # type: ignore[import-not-found]  # only inside uWSGI
    except ImportError:
        return True
    options = getattr(uwsgi, "opt", {})
    return bool(options.get("enable-threads") or options.get("threads"))


# ------------------------------------------------------- counts and their writer


class CountBuffer:
    """The counts and details this process has not written yet."""

    def __init__(self, new_batch: Callable[[], Batch]) -> None:
        self._lock = threading.Lock()
        self._new_batch = new_batch
        self._batch = new_batch()

    def add(self, key: Any, n: int = 1, start: Any = None) -> None:
        with self._lock:
            self._batch.add(key, n, start)

    def take(self) -> Batch:
        """Everything pending, for a flush; the buffer starts again empty."""
        with self._lock:
            batch, self._batch = self._batch, self._new_batch()
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back what a flush could not write, for the next try."""
        with self._lock:
            self._batch.update(batch)

    def pending(self) -> Batch:
        """A copy of what is pending (tests, diagnosis)."""
        with self._lock:
            return self._batch.copy()

    def clear(self) -> None:
        self.take()

    def __len__(self) -> int:
        with self._lock:
            return len(self._batch.counts) + bool(self._batch)


#: The signals servers use to stop, reload and talk to their workers. A thread of ours
#: never takes them: a signal sent to the process must reach the server's own thread.
#: Under uWSGI with threads, a SIGTERM that one of our threads took instead left the
#: worker waiting in its accept loop for ever (its stop never came).
SERVER_SIGNALS = frozenset(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM",
                 "SIGCHLD", "SIGPIPE", "SIGWINCH", "SIGTTIN", "SIGTTOU")
    if hasattr(signal, name)
)  # fmt: skip


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Block the server's signals around starting a thread, which inherits the mask."""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Worker:
    """A daemon thread that runs ``work`` when woken, at most once per ``pause()``
    seconds, until stopped. Started on the first wake."""

    def __init__(self, name: str, work: Callable[[], Any], pause: Callable[[], float]) -> None:
        self.name, self.work, self.pause = name, work, pause
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    with signals_blocked():
                        self._thread.start()
        # Set only when clear: every session start wakes the writer, and setting an
        # Event takes its lock even when set. A wake seen set is one the thread has not
        # taken yet, so what the caller added before it goes with that write.
        if not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.wait(self.pause()):  # gather a whole interval into one write
                return
            try:
                self.work()
            except Exception:
                logger.exception("Trusted Identity's %s failed", self.name)
            finally:
                close_thread_connections()  # none is left idle behind

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, waiting for the work in flight (at most ``timeout``)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __len__(self) -> int:
        return self._thread is not None


def close_thread_connections() -> None:
    """End the calling thread's database connections, a thread of the app's own being
    done. Django's ``close_all()`` keeps an in-memory SQLite connection open (closing the
    last one would drop the database), so a thread's own connection to one would wait
    for the garbage collector (a ResourceWarning from Python 3.13); another thread's
    connection keeps a shared in-memory database alive, and one of this thread alone
    goes with it anyway."""
    for connection in connections.all(initialized_only=True):
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            if connection.connection is not None:
                connection.connection.close()
                connection.connection = None
        else:
            connection.close()


class Background:
    """Work run off the request on a daemon thread of its own, at most one in flight per
    key (a platform's JWKS fetched again when it has grown old); each thread closes its
    own database connections when done."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Any, threading.Thread] = {}

    def start(self, key: Any, work: Callable[[], Any]) -> bool:
        """Run ``work`` for ``key`` unless it is running already; whether it was started."""
        with self._lock:
            if key in self._running:
                return False
            thread = threading.Thread(
                target=self._run, args=(key, work), name=f"trusted-identity-{key}", daemon=True
            )
            self._running[key] = thread
            with signals_blocked():
                thread.start()
        return True

    def _run(self, key: Any, work: Callable[[], Any]) -> None:
        try:
            work()
        except Exception:
            logger.exception("Trusted Identity's background %s failed", key)
        finally:
            close_thread_connections()
            with self._lock:
                self._running.pop(key, None)

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for the work in flight (at most ``timeout`` seconds each)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def clear(self) -> None:
        self.wait()
        with self._lock:
            self._running.clear()

    def __len__(self) -> int:
        return len(self._running)


class Flusher:
    """Writes the buffer with ``write``: one flush at a time, so one that waits (at exit,
    or a test's) returns only once the write in flight has committed."""

    def __init__(self, buffer: CountBuffer, write: CountWriter) -> None:
        self.buffer, self.write = buffer, write
        self._flushing = threading.Lock()

    def flush(self) -> int:
        with self._flushing:
            batch = self.buffer.take()
            try:
                return self.write(batch) if batch else 0
            finally:
                if batch:
                    self.buffer.restore(batch)  # what could not be written


class Outbox:
    """Alert deliveries waiting to go out: each a callable, run once, off the counting path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivering = threading.Lock()
        self._queue: deque[Callable[[], Any]] = deque()

    def put(self, delivery: Callable[[], Any]) -> None:
        with self._lock:
            self._queue.append(delivery)

    def drain(self) -> int:
        """Run every delivery waiting; returns how many. One drain at a time, so a
        drain returns only when nothing is in flight. A failing one is logged."""
        done = 0
        with self._delivering:
            while True:
                with self._lock:
                    if not self._queue:
                        return done
                    delivery = self._queue.popleft()
                try:
                    delivery()
                except Exception:
                    logger.exception("Trusted Identity could not deliver an alert")
                done += 1

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


# ------------------------------------------------------------------ the runtime


class Runtime:
    """Every piece of the app's per-process state. One per process: :func:`current`."""

    #: Every part, each with ``clear()`` and ``len()`` (0 = holds nothing): a new piece of
    #: state is added here, or tests/test_runtime.py fails.
    PARTS = (
        "thread_connections",
        "generation",
        "near_cache",
        "unknown_keys",
        "real_keys",
        "origins",
        "key_tables",
        "diagnostic_tables",
        "public_key_sets",
        "jwks_throttle",
        "jwks_refreshes",
        "private_keys",
        "key_signers",
        "key_ring",
        "user_hasher",
        "tokens",
        "failure_sampler",
        "rates",
        "authenticators",
        "alerts_raised",
        "counts",
        "outbox",
        "count_thread",
        "delivery_thread",
    )

    def __init__(self, write_counts: CountWriter, new_batch: Callable[[], Batch]) -> None:
        self.write_counts, self.new_batch = write_counts, new_batch
        self.threads = python_threads_run()
        self._make_parts()

    def _make_parts(self) -> None:
        self.thread_connections = ThreadConnections()  # each thread's, found once
        self.generation = GenerationTracker()
        self.near_cache = NearCache()
        self.unknown_keys = UnknownKeys()
        self.real_keys = SeenSet(100_000)  # API keys a lookup found a platform for
        self.origins = GenerationValue()
        self.key_tables = Memo(4096)  # decrypted secrets, by key ring, platform and ciphertexts
        self.diagnostic_tables = Memo(1024)
        self.public_key_sets = Memo(1024)  # parsed public keys, by platform and keys
        self.jwks_throttle = Throttle()  # JWKS fetches tried, per platform (once a minute)
        self.jwks_refreshes = Background()  # JWKS fetched again in the background
        self.private_keys = Memo(256)  # the site's PRIVATE_KEYS, parsed, by "space/kind"
        self.key_signers = Memo(1024)  # which of a key set each private key signs as
        self.key_ring = Slot()
        self.user_hasher = Slot()  # sketch.UserHasher keyed with models.SketchKey
        self.tokens = TokenMemo()
        self.failure_sampler = FailureSampler()
        self.rates = Memo(64)
        self.authenticators = Memo(16)
        self.alerts_raised = SeenSet()
        self.counts = CountBuffer(self.new_batch)
        self.outbox = Outbox()
        self.flusher = Flusher(self.counts, self.write_counts)
        self.count_thread = Worker(
            "trusted-identity-outcomes",
            self.flusher.flush,
            lambda: float(app_settings.COUNT_FLUSH_INTERVAL),
        )
        self.delivery_thread = Worker("trusted-identity-alerts", self.outbox.drain, lambda: 0.0)

    # ------------------------------------------------------------- counting

    def counted(self) -> None:
        """After a count went into the buffer: write it as ``COUNT_FLUSH_INTERVAL`` says."""
        if not self.threads or float(app_settings.COUNT_FLUSH_INTERVAL) <= 0:
            self.flush_counts()
        elif self.threads:
            self.count_thread.wake()
        if not self.threads:
            self.outbox.drain()  # no thread will: after the write, outside it

    def flush_counts(self) -> int:
        """Write the pending counts now, in the caller's connection; rows written."""
        return self.flusher.flush()

    def deliver(self, delivery: Callable[[], Any]) -> None:
        """Queue an alert's delivery; its own thread sends it (without threads, the
        request after the counts are written; :meth:`flush` in any case)."""
        self.outbox.put(delivery)
        if self.threads:
            self.delivery_thread.wake()

    def flush(self) -> int:
        """Write every pending count and deliver every pending alert, waiting for any
        write or delivery in flight. Returns the count rows written."""
        written = self.flush_counts()
        self.outbox.drain()
        return written

    def stop(self) -> None:
        """Stop this process's threads and write what they left (at exit)."""
        self.count_thread.stop()
        self.delivery_thread.stop()
        self.flush()

    # ---------------------------------------------------------------- reset

    def reset(self) -> None:
        """Drop everything this process remembers, pending counts and alerts included
        (settings changed, or a test ends), and read the settings again."""
        self.count_thread.stop()
        self.delivery_thread.stop()
        self.jwks_refreshes.wait()
        self._make_parts()
        app_settings.reload()

    def __len__(self) -> int:
        return sum(len(getattr(self, part)) for part in self.PARTS)


#: The process's runtime; the app's one piece of module-level state.
_current: Runtime | None = None


def current() -> Runtime:
    runtime = _current
    if runtime is None:
        raise ImproperlyConfigured(
            "trusted_identity's runtime is made by its AppConfig.ready(): add "
            '"trusted_identity" to INSTALLED_APPS and call django.setup()'
        )
    return runtime


def install(runtime: Runtime) -> None:
    """Make ``runtime`` the process's (``AppConfig.ready()``); a child process after a
    fork gets a new one, without the parent's threads, buffer or caches."""
    global _current
    first = _current is None
    _current = runtime
    if first:
        atexit.register(_flush_at_exit)
        # A multiprocessing child started by fork (Granian's workers) ends with
        # os._exit() once its target returns: no atexit handler runs there, but
        # multiprocessing's own finalizers do. Elsewhere this is a second, empty flush.
        multiprocessing.util.Finalize(None, _flush_at_exit, exitpriority=0)
        os.register_at_fork(after_in_child=_after_fork)


def _flush_at_exit() -> None:
    if _current is not None:
        try:
            _current.stop()
        except Exception:
            logger.exception("Trusted Identity could not write its counts at exit")


def _after_fork() -> None:
    """In a forked child (gunicorn ``--preload``, multiprocessing): the parent's counts
    are the parent's to write, its threads don't exist here and its locks may be held."""
    global _current
    if _current is not None:
        _current = Runtime(_current.write_counts, _current.new_batch)
