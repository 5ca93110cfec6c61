"""How session-start outcomes reach the database: atomic increments, buffered per process.

Writing one row per session start makes every start wait for a commit on the same
hot row (one platform, hour and outcome), which caps throughput at the disk's
flush rate. Instead each process adds starts to an in-memory counter and a
background thread writes the sums every ``COUNT_FLUSH_INTERVAL`` seconds (and at
exit) as ``count = count + n``: several processes never lose each other's
updates, and a failed write keeps its counts for the next try.

A count is written at once, in the caller's connection, instead of buffered when:

- ``COUNT_FLUSH_INTERVAL`` is 0 (a choice for sites that want figures to the request);
- the caller is inside a transaction (``atomic``): the count then commits or rolls back
  with the caller's work, and may name a platform only that transaction can see yet. A
  buffered count would outlive a rollback and be written later by another connection,
  to a platform that no longer exists, or to another one that got the same id;
- Django's test environment is set up (``setup_test_environment()``, which Django's
  test runner and pytest-django call): tests read the figures straight after a
  request, and a count must never be written after its test has ended.

So a site's own ``TestCase`` and pytest-django tests see exact counts, with nothing
left over for the next test, while serving processes keep the buffer. The session
view opts out of ``ATOMIC_REQUESTS`` so that sites using it keep the buffer as well.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import Counter
from datetime import datetime

from django.core import mail
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import F
from django.dispatch import Signal

from .conf import app_settings
from .countwrites import Details, StartDetails, write_details_batch
from .models import OutcomeCount, Platform

logger = logging.getLogger("trusted_identity")

CountKey = tuple[int, datetime, str]  # (platform id, start of the hour, outcome)

#: Internal: counts were written; the alerts (``services.alerts``) listen. Arguments:
#: ``rejected_hours`` {(platform id, hour)}, ``grace_warnings`` {(platform id, secret
#: id, grace end as a Unix time)}. Not in ``signals``: sites connect to ``rollout_alert``.
counts_written = Signal()


#: How often an increment is tried when its row keeps appearing and going (a concurrent
#: first INSERT, then ``prune`` folding the row away) before the write is kept for later.
WRITE_ATTEMPTS = 10


def write_increment(platform_id: int, hour: datetime, outcome: str, count: int) -> None:
    """Add ``count`` to one hourly row: one UPDATE when the row exists, else an INSERT.

    The increment happens in the database, so concurrent writers never lose each
    other's updates. A concurrent first INSERT, or ``prune`` moving the row into the
    daily counts between our UPDATE and INSERT, makes us try again; a deleted platform
    takes its counts with it.
    """
    rows = OutcomeCount.objects.filter(platform_id=platform_id, hour=hour, outcome=outcome)
    for _attempt in range(WRITE_ATTEMPTS):
        # Its own atomic block: a failure rolls back this write only, even inside a
        # caller's transaction, and leaves the caller free to keep the counts.
        with transaction.atomic():
            if rows.update(count=F("count") + count):
                return
            # Foreign keys are checked at commit (Django makes them DEFERRABLE INITIALLY
            # DEFERRED), so an INSERT for a deleted platform would only fail there, outside
            # the IntegrityError handler below, and the counts would be retried forever.
            if not Platform.objects.filter(pk=platform_id).exists():
                return  # the platform was deleted: its counts went with it
            try:
                with transaction.atomic():
                    OutcomeCount.objects.create(
                        platform_id=platform_id, hour=hour, outcome=outcome, count=count
                    )
                return
            except IntegrityError:
                pass  # inserted meanwhile by another writer, or folded away by prune: again
    raise IntegrityError(
        f"could not add {count} {outcome} starts to platform #{platform_id} at {hour} "
        f"in {WRITE_ATTEMPTS} attempts"
    )


class OutcomeBuffer:
    """Per-process sums of outcomes not yet written, and the thread that writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: Counter[CountKey] = Counter()
        self._details = Details()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._owner_pid = 0

    def add(self, key: CountKey, count: int = 1) -> None:
        with self._lock:
            self._pending[key] += count
            self._ensure_flusher()
        self._wake.set()

    def add_start(self, key: CountKey, start: StartDetails) -> None:
        """Count one start and its details under one lock (the hot path)."""
        with self._lock:
            self._pending[key] += 1
            start.add_to(self._details)
            self._ensure_flusher()
        self._wake.set()

    def pending_details(self) -> Details:
        with self._lock:
            copy = Details()
            copy.update(self._details)
            return copy

    def pending(self) -> dict[CountKey, int]:
        with self._lock:
            return dict(self._pending)

    def flush(self) -> int:
        """Write every pending sum; what can't be written stays pending. Returns rows written.

        One flush at a time: the one at exit waits for the thread's write in flight,
        whose counts are no longer pending, or the process would end (and the daemon
        thread with it) before they are committed.
        """
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, Counter()
                details, self._details = self._details, Details()
            taken = dict(batch)
            written = 0
            try:
                for key, n in list(batch.items()):
                    write_increment(*key, n)
                    del batch[key]
                    written += 1
            except DatabaseError:
                logger.exception(
                    "Could not write %d outcome counts; keeping them for the next try", len(batch)
                )
                with self._lock:
                    self._pending.update(batch)
            warnings = set(details.grace_warnings)
            if not write_details_safely(details):
                with self._lock:
                    self._details.update(details)
            announce(taken, warnings)
            return written

    def _ensure_flusher(self) -> None:
        # After a fork (gunicorn --preload) the parent's thread does not exist here.
        if self._thread is not None and self._owner_pid == os.getpid() and self._thread.is_alive():
            return
        self._owner_pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name="trusted-identity-outcomes", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            # Gather a whole interval of starts into one write per hourly row.
            threading.Event().wait(float(app_settings.COUNT_FLUSH_INTERVAL) or 0.5)
            try:
                self.flush()
            except Exception:
                logger.exception("Outcome count flush failed")
            finally:
                # This thread's connections only; a flush at most every interval
                # does not need a persistent one, and none is left idle behind.
                connections.close_all()


_buffer = OutcomeBuffer()
atexit.register(_buffer.flush)


def write_details_safely(details: Details) -> bool:
    """Write a details batch; False (logged, what is left kept in ``details``) on failure."""
    try:
        write_details_batch(details)
    except DatabaseError:
        logger.exception("Could not write session-start details; keeping them for the next try")
        return False
    details.grace_warnings.clear()
    return True


def announce(counts: dict[CountKey, int], grace_warnings: set[tuple[int, int, float]]) -> None:
    """Tell the alerts (``services.alerts``, connected in ``receivers``) what was written:
    they check the rejections of those hours and the secrets near their grace's end.
    A failing receiver is logged; counting goes on."""
    rejected = {(pid, hour) for (pid, hour, outcome) in counts if outcome == "rejected"}
    if not rejected and not grace_warnings:
        return
    for _receiver, result in counts_written.send_robust(
        sender=OutcomeBuffer, rejected_hours=rejected, grace_warnings=grace_warnings
    ):
        if isinstance(result, Exception):
            logger.error("Trusted Identity alert check failed: %r", result)


def in_transaction() -> bool:
    """Whether the caller's connection (the one counts are written with) is in ``atomic``."""
    return connections[router.db_for_write(OutcomeCount)].in_atomic_block


def in_test_environment() -> bool:
    """Whether Django's ``setup_test_environment()`` has run in this process.

    Django's test runner and pytest-django both call it; it is what creates
    ``django.core.mail.outbox`` (documented in Django's testing tools), and
    ``teardown_test_environment()`` deletes it again.
    """
    return hasattr(mail, "outbox")


def writes_at_once() -> bool:
    """Whether a count is written now instead of buffered (see the module's docstring)."""
    return (
        float(app_settings.COUNT_FLUSH_INTERVAL) <= 0 or in_transaction() or in_test_environment()
    )


def count(platform_id: int, hour: datetime, outcome: str, n: int = 1) -> None:
    """Count ``n`` starts: buffered, or written at once (see :func:`writes_at_once`)."""
    if not writes_at_once():
        _buffer.add((platform_id, hour, outcome), n)
        return
    try:
        write_increment(platform_id, hour, outcome, n)
    except DatabaseError:
        logger.exception("Could not record a %s outcome for platform #%s", outcome, platform_id)
        return
    if outcome == "rejected":
        announce({(platform_id, hour, outcome): n}, set())


def count_start(platform_id: int, hour: datetime, outcome: str, start: StartDetails) -> None:
    """Count one session start with its details: buffered, or written at once."""
    if not writes_at_once():
        _buffer.add_start((platform_id, hour, outcome), start)
        return
    count(platform_id, hour, outcome)
    details = Details()
    start.add_to(details)
    warnings = set(details.grace_warnings)
    write_details_safely(details)
    announce({}, warnings)


def flush() -> int:
    """Write this process's pending counts now (tests, management commands, shutdown)."""
    return _buffer.flush()


def pending() -> dict[CountKey, int]:
    return _buffer.pending()
