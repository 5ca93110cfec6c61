"""How session-start outcomes reach the database: one buffer, one flush, atomic increments.

Writing one row per session start makes every start wait for a commit on the same
hot row (one platform, hour and outcome), which caps throughput at the disk's flush
rate. So every count goes into the runtime's buffer (``trusted_identity.runtime``),
and :func:`write_batch` writes the sums as ``count = count + n``, a few multi-row
statements per table and flush however many distinct values arrived
(``countwrites``): several processes never lose each other's updates, a flush keeps
up with a flood, and a failed write keeps its counts for the next try.
When the buffer is written is the setting ``COUNT_FLUSH_INTERVAL``: ``0`` at once, by
the caller, in its own connection (what tests use); more, by the runtime's thread
every interval and at exit. The same code runs either way; nothing here looks for a
test environment.

One rule on top: a count made inside the caller's transaction (``atomic``) is written
at once, in that transaction, by the same :func:`write_batch` on a batch of its own.
It then commits or rolls back with the caller's work, and may name a platform only
that transaction can see yet: buffered, it would outlive a rollback and be written
later by another connection, to a platform that no longer exists, or to another one
that got the same id. The session view opts out of ``ATOMIC_REQUESTS``, so sites using
it keep the buffer.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import DatabaseError, router
from django.dispatch import Signal

from . import runtime
from .countwrites import CountBatch, CountKey, StartDetails, write_counts, write_details_batch
from .models import OutcomeCount

logger = logging.getLogger("trusted_identity")

#: Internal: counts were written; the alerts (``services.alerts``) listen and decide
#: whether one is due (they deliver it through the runtime's outbox, off this path).
#: Arguments: ``rejected_hours`` {(platform id, hour)}, ``grace_warnings`` {(platform id,
#: secret id, grace end as a Unix time)}. Not in ``signals``: sites connect to
#: ``rollout_alert``.
counts_written = Signal()


def write_batch(batch: CountBatch) -> int:
    """Write a batch; what is written leaves it, what fails stays (logged). Rows written.

    The one writer of counts: the runtime's flush and a count inside a transaction both
    come here. Then the alerts are told what was written.
    """
    written = 0
    rejected = {(pid, hour) for (pid, hour, outcome) in batch.counts if outcome == "rejected"}
    try:
        written = write_counts(batch)
    except DatabaseError:
        logger.exception(
            "Could not write %d outcome counts; keeping them for the next try", len(batch.counts)
        )
    warnings = set(batch.details.grace_warnings)
    if batch.details:
        try:
            write_details_batch(batch.details)
            batch.details.grace_warnings.clear()
        except DatabaseError:
            logger.exception("Could not write session-start details; keeping them for the next try")
    announce(rejected, warnings)
    return written


def announce(rejected: set[tuple[int, datetime]], grace_warnings: set[tuple[int, int, float]]):
    """Tell the alerts (``services.alerts``, connected in ``receivers``) what was written:
    they check the rejections of those hours and the secrets near their grace's end.
    A failing receiver is logged; counting goes on."""
    if not rejected and not grace_warnings:
        return
    for _receiver, result in counts_written.send_robust(
        sender=CountBatch, rejected_hours=rejected, grace_warnings=grace_warnings
    ):
        if isinstance(result, Exception):
            logger.error("Trusted Identity alert check failed: %r", result)


def in_transaction() -> bool:
    """Whether the caller's connection (the one counts are written with) is in ``atomic``."""
    alias = router.db_for_write(OutcomeCount)
    return runtime.current().thread_connections.get(alias).in_atomic_block


def count(
    platform_id: int, hour: datetime, outcome: str, n: int = 1, start: StartDetails | None = None
) -> None:
    """Count ``n`` starts (with one start's details): into the buffer, written as
    ``COUNT_FLUSH_INTERVAL`` says; inside a transaction, at once, in it."""
    key: CountKey = (platform_id, hour, outcome)
    if in_transaction():
        batch = CountBatch()
        batch.add(key, n, start)
        try:
            write_batch(batch)
        except Exception:  # never fails the caller's request; its transaction goes on
            logger.exception("Could not record a %s start of platform #%s", outcome, platform_id)
            return
        if batch:  # it may name what only this transaction sees: never kept for later
            logger.error("Could not record a %s start of platform #%s", outcome, platform_id)
        return
    current = runtime.current()
    current.counts.add(key, n, start)
    try:
        current.counted()
    except Exception:
        logger.exception("Trusted Identity could not write its counts; keeping them")


def count_start(platform_id: int, hour: datetime, outcome: str, start: StartDetails) -> None:
    """Count one session start with its details (the hot path)."""
    count(platform_id, hour, outcome, 1, start)


def flush() -> int:
    """Write this process's pending counts now (figures, management commands). Rows written."""
    return runtime.current().flush_counts()
