"""Writing what session starts leave behind: outcome counts, their details (reasons,
forms, secrets, public keys), client versions, distinct users, secret and key use and
the failure log.

What ``outcomes`` gathers in a :class:`CountBatch` (per flush) is written here in a
few statements per table, however many distinct values arrived: one multi-row upsert
(``INSERT ... ON CONFLICT DO UPDATE SET count = count + excluded.count``) per count
table, in one transaction with the version slots (``versionslots``: read the day's
rows, merge, write back the difference); the distinct users of the batch read in one
query and merged with a compare-and-set per row; secret and key use in one conditional
``UPDATE`` per row, sent together (and, for a retired secret, its starts and users since
the retirement, ``secretwrites``); the failure log in one ``INSERT`` and its cap. The
reads and compare-and-sets are plain statements (``flushsql``), as the upserts are
(``upserts``): built through the ORM they cost more Python than the database's work.
Platforms deleted meanwhile are left out first, in one query (and again if one
disappears before the commit).

Every write is safe beside other processes and ``prune``: counts are added in the
database, the version slots of a day are merged under a lock (PostgreSQL; SQLite
serialises writers), distinct users with a compare-and-set on the row's revision,
secret use only moves forward.

Memory is bounded too: a buffer holds at most ``MAX_BUFFERED_VERSIONS`` distinct
client-version keys between flushes (more are counted as ``other``, as a day beyond
its slots counts them), and distinct users as sketches (16 KiB at most per platform,
day and kind). The other keys are named by the server (platforms, hours, outcomes,
reasons, forms, secrets), not by clients.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import DatabaseError, IntegrityError, transaction

from .conf import app_settings
from .daytotals import add_day_totals, add_detail_day_totals
from .flushsql import (
    DistinctKey,
    existing_platforms,
    read_sketches,
    read_version_rows,
    replace_sketch,
)
from .models import (
    DailyDetailCount,
    DetailCount,
    DistinctUsers,
    FailureRecord,
    OutcomeCount,
    PlatformSecret,
    PublicKey,
)
from .secretwrites import SecretUses, write_last_used, write_secret_uses
from .sketch import DistinctSketch
from .upserts import connection_for, upsert_counts
from .versionslots import OTHER, DaySlots, VersionSlot

logger = logging.getLogger("trusted_identity")

#: How often a write is tried when a platform or a row changes under it.
WRITE_ATTEMPTS = 10
#: Distinct client-version keys a buffer holds between flushes; beyond, ``other``.
MAX_BUFFERED_VERSIONS = 4096

CountKey = tuple[int, datetime, str]  # (platform id, start of the hour, outcome)
DetailKey = tuple[int, datetime, str, str, str]  # platform, hour, dimension, value, outcome
VersionKey = tuple[int, date, str, str, str]  # platform, day, dimension, value, outcome


def _count_version(versions: Counter[VersionKey], key: VersionKey, n: int) -> None:
    if key not in versions and len(versions) >= MAX_BUFFERED_VERSIONS:
        key = (*key[:3], OTHER, key[4])
    versions[key] += n


@dataclass
class Details:
    """Everything but the outcome counts that a batch of starts adds."""

    details: Counter[DetailKey] = field(default_factory=Counter)
    versions: Counter[VersionKey] = field(default_factory=Counter)
    distinct: defaultdict[DistinctKey, DistinctSketch] = field(
        default_factory=lambda: defaultdict(DistinctSketch)
    )
    #: secret id -> its uses (last one, and those since its retirement: ``secretwrites``)
    secret_uses: dict[int, SecretUses] = field(default_factory=dict)
    #: public key id -> (platform id, its last use)
    keys_used: dict[int, tuple[int, datetime]] = field(default_factory=dict)
    failures: list[FailureRecord] = field(default_factory=list)
    #: (platform id, secret id, grace end) of previous secrets seen verifying near their end
    grace_warnings: set[tuple[int, int, float]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.details
            or self.versions
            or self.distinct
            or self.secret_uses
            or self.keys_used
            or self.failures
            or self.grace_warnings
        )

    def update(self, other: Details) -> None:
        """Add ``other`` into this batch (a write that failed is kept for the next try)."""
        self.details.update(other.details)
        for key, n in other.versions.items():
            _count_version(self.versions, key, n)
        for key, sketch in other.distinct.items():
            self.distinct[key].merge(sketch)
        for secret_id, uses in other.secret_uses.items():
            self.secret_uses.setdefault(secret_id, SecretUses(uses.platform_id)).update(uses)
        for key_id, (platform_id, at) in other.keys_used.items():
            self.use_key(key_id, platform_id, at)
        self.failures.extend(other.failures)
        self.grace_warnings |= other.grace_warnings

    def use_secret(self, secret_id: int, platform_id: int, at: datetime, hashed: int | None):
        """One start verified by ``secret_id`` at ``at``, by the user ``hashed``."""
        self.secret_uses.setdefault(secret_id, SecretUses(platform_id)).add(at, hashed)

    def use_key(self, key_id: int, platform_id: int, at: datetime) -> None:
        """One start verified by the public key ``key_id`` at ``at``."""
        known = self.keys_used.get(key_id)
        if known is None or known[1] < at:
            self.keys_used[key_id] = (platform_id, at)

    def drop_platforms(self, gone: set[int]) -> None:
        """Forget what names a deleted platform (its rows went with it)."""
        for table in (self.details, self.versions, self.distinct):
            for key in [key for key in table if key[0] in gone]:
                del table[key]
        for secret_id in [s for s, uses in self.secret_uses.items() if uses.platform_id in gone]:
            del self.secret_uses[secret_id]
        for key_id in [k for k, (pid, _at) in self.keys_used.items() if pid in gone]:
            del self.keys_used[key_id]
        self.failures[:] = [f for f in self.failures if f.platform_id not in gone]


@dataclass(slots=True)
class StartDetails:
    """The details of one session start, as ``services.counting`` found them."""

    details: tuple[DetailKey, ...] = ()
    versions: tuple[VersionKey, ...] = ()
    distinct: tuple[tuple[DistinctKey, int], ...] = ()
    #: secret id, platform id, at, user hash (None: no distinct-user key)
    secret_used: tuple[int, int, datetime, int | None] | None = None
    #: public key id, platform id, at
    key_used: tuple[int, int, datetime] | None = None
    failure: FailureRecord | None = None
    grace_warning: tuple[int, int, float] | None = None

    def add_to(self, batch: Details) -> None:
        for key in self.details:
            batch.details[key] += 1
        for key in self.versions:
            _count_version(batch.versions, key, 1)
        for key, hashed in self.distinct:
            batch.distinct[key].add_hashes((hashed,))
        if self.secret_used is not None:
            batch.use_secret(*self.secret_used)
        if self.key_used is not None:
            batch.use_key(*self.key_used)
        if self.failure is not None:
            batch.failures.append(self.failure)
        if self.grace_warning is not None:
            batch.grace_warnings.add(self.grace_warning)


@dataclass
class CountBatch:
    """Outcome counts and their details on their way to the database: what the runtime's
    buffer holds between flushes, and what one flush writes (``outcomes.write_batch``)."""

    counts: Counter[CountKey] = field(default_factory=Counter)
    details: Details = field(default_factory=Details)

    def __bool__(self) -> bool:
        return bool(self.counts or self.details)

    def add(self, key: CountKey, n: int = 1, start: StartDetails | None = None) -> None:
        self.counts[key] += n
        if start is not None:
            start.add_to(self.details)

    def update(self, other: CountBatch) -> None:
        self.counts.update(other.counts)
        self.details.update(other.details)

    def copy(self) -> CountBatch:
        copy = CountBatch()
        copy.update(self)
        return copy

    def platform_ids(self) -> set[int]:
        details = self.details
        ids = {key[0] for key in self.counts}
        for table in (details.details, details.versions, details.distinct):
            ids.update(key[0] for key in table)
        ids.update(uses.platform_id for uses in details.secret_uses.values())
        ids.update(platform_id for platform_id, _at in details.keys_used.values())
        ids.update(record.platform_id for record in details.failures)
        return ids

    def drop_platforms(self, gone: set[int]) -> int:
        """Forget the counts of deleted platforms; how many count rows that was."""
        dropped = [key for key in self.counts if key[0] in gone]
        for key in dropped:
            del self.counts[key]
        self.details.drop_platforms(gone)
        return len(dropped)


# ------------------------------------------------------------------ statements


def add_count(model, key_fields: dict, count: int) -> None:
    """``count = count + n`` on one row of a count table (one upsert); a deleted
    platform's count is dropped."""
    if not existing_platforms([key_fields["platform_id"]]):
        return
    names = tuple(f.attname for f in model._meta.pk_fields)
    with transaction.atomic(using=connection_for(model).alias):
        upsert_counts(model, names, [(*(key_fields[n] for n in names), count)])


# ------------------------------------------------------------- counts, details, versions


def _version_lock(connection, groups: list[tuple[int, date, str]]) -> None:
    """Serialise the merges of the same platform, day and dimension across processes
    (PostgreSQL: advisory locks held to the commit, taken in one order). SQLite
    serialises writers by itself."""
    if connection.vendor != "postgresql" or not groups:
        return
    keys = sorted(
        {(pid << 22) ^ (day.toordinal() << 1) ^ (dim == "sdk_version") for pid, day, dim in groups}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY 1) s",
            [keys],
        )


def merge_version_slots(versions: Counter[VersionKey]) -> int:
    """Merge a batch's client versions into the stored slots of their days
    (``versionslots``): one read of the days' rows, then one delete of the evicted
    values and one upsert of the difference. Call inside a transaction. Statements run."""
    if not versions:
        return 0
    connection = connection_for(DailyDetailCount)
    batches: dict[tuple[int, date, str], dict[str, Counter[str]]] = defaultdict(
        lambda: defaultdict(Counter)
    )
    for (pid, day, dimension, value, outcome), n in versions.items():
        batches[pid, day, dimension][value][outcome] += n
    _version_lock(connection, list(batches))
    stored: dict[tuple[int, date, str], DaySlots] = defaultdict(DaySlots)
    before: dict[tuple, int] = {}
    for pid, day, dimension, value, outcome, n, max_error in read_version_rows(batches):
        slots = stored[pid, day, dimension]
        if value == OTHER:
            slots.other[outcome] += n
        else:
            slot = slots.slots.setdefault(value, VersionSlot(max_error=max_error))
            slot.counts[outcome] += n
        before[pid, day, dimension, value, outcome] = n
    kept_before = {g: dict(s.slots) for g, s in stored.items()}
    upserts, evicted = [], []
    for group, batch in batches.items():
        slots = stored[group]
        slots.merge(batch, app_settings.VERSIONS_PER_DAY)
        for value, slot in kept_before.get(group, {}).items():
            if slots.slots.get(value) is not slot:  # gave up its slot
                evicted.extend(
                    (*group, value, o) for o in slot.counts if (*group, value, o) in before
                )
        for value, slot in [*slots.slots.items(), (OTHER, VersionSlot(slots.other))]:
            fresh = kept_before.get(group, {}).get(value) is not slot and value != OTHER
            for outcome, n in slot.counts.items():
                key = (*group, value, outcome)
                added = n if fresh else n - before.get(key, 0)
                if added:
                    upserts.append((*key, added, slot.max_error))
    statements = 2  # the lock and the read
    if evicted:
        for start in range(0, len(evicted), 150):
            DailyDetailCount.objects.filter(pk__in=evicted[start : start + 150]).delete()
            statements += 1
    upserts.sort()
    fields = ("platform_id", "day", "dimension", "value", "outcome")
    return statements + upsert_counts(DailyDetailCount, fields, upserts, ("max_error",))


def write_counts(batch: CountBatch) -> int:
    """Write a batch's outcome counts, hourly details and client versions in one
    transaction; they leave the batch once committed. Returns the outcome count rows
    written (a deleted platform's count as written: dropped).

    Deleted platforms are left out first, in one query. Foreign keys are checked at
    commit (Django makes them DEFERRABLE INITIALLY DEFERRED), so a platform deleted
    after that query fails the commit: then its counts are left out and the rest is
    written again, never lost with it.
    """
    details = batch.details
    if not (batch.counts or details.details or details.versions):
        return 0
    written = 0
    for _attempt in range(WRITE_ATTEMPTS):
        ids = batch.platform_ids()
        existing = existing_platforms(ids)
        written += batch.drop_platforms(ids - existing)
        counts = sorted((hour, pid, outcome, n) for (pid, hour, outcome), n in batch.counts.items())
        hourly = sorted(
            (hour, pid, dim, value, outcome, n)
            for (pid, hour, dim, value, outcome), n in details.details.items()
        )
        try:
            with transaction.atomic(using=connection_for(OutcomeCount).alias):
                upsert_counts(
                    OutcomeCount,
                    ("hour", "platform_id", "outcome"),
                    counts,
                )
                add_day_totals(counts)
                upsert_counts(
                    DetailCount, ("hour", "platform_id", "dimension", "value", "outcome"), hourly
                )
                add_detail_day_totals(hourly)
                merge_version_slots(details.versions)
        except IntegrityError:
            continue  # a platform went away before the commit: without it, again
        written += len(batch.counts)
        batch.counts.clear()
        details.details.clear()
        details.versions.clear()
        return written
    raise IntegrityError(f"could not write {len(batch.counts)} counts in {WRITE_ATTEMPTS} attempts")


# ------------------------------------------------------------------ distinct users


def write_distinct(distinct: dict[DistinctKey, DistinctSketch]) -> None:
    """Merge each (platform, day, kind)'s users into its stored sketch: the batch's rows
    read in one query, each changed one written if its revision is still the one read
    (else another process wrote meanwhile: read again; ``flushsql`` holds both
    statements). Written keys leave ``distinct``."""
    for _attempt in range(WRITE_ATTEMPTS):
        if not distinct:
            return
        stored = read_sketches(distinct)
        for key, added in list(distinct.items()):
            pid, day, kind = key
            found = stored.get(key)
            if found is None:
                try:
                    with transaction.atomic(using=connection_for(DistinctUsers).alias):
                        DistinctUsers.objects.create(
                            platform_id=pid, day=day, kind=kind, sketch=added.to_bytes(), revision=1
                        )
                except IntegrityError:  # created meanwhile (read again), or the platform is gone
                    if not existing_platforms([pid]):
                        del distinct[key]
                    continue
                del distinct[key]
                continue
            data, revision = found
            try:
                sketch = DistinctSketch.from_bytes(data)
            except ValueError:
                logger.error("Distinct users of platform #%s on %s were damaged", pid, day)
                sketch = DistinctSketch()
            if not sketch.merge(added) or replace_sketch(key, sketch.to_bytes(), revision):
                del distinct[key]
    if distinct:
        raise IntegrityError(f"could not merge {len(distinct)} distinct-user rows")


def merge_distinct(platform_id: int, day: date, kind: str, hashes: Iterable[int]) -> None:
    """Merge user hashes into one day's sketch (:func:`write_distinct` for one row)."""
    if not existing_platforms([platform_id]):
        return
    sketch = DistinctSketch()
    sketch.add_hashes(hashes)
    write_distinct({(platform_id, day, kind): sketch})


# ------------------------------------------------------- secret use and failures


def write_secrets_used(secrets_used: dict[int, tuple[int, datetime]]) -> None:
    """When each secret last verified a start (``secretwrites.write_last_used``)."""
    write_last_used(PlatformSecret, secrets_used)


def write_failures(failures: list[FailureRecord]) -> None:
    """Add sampled failures, then keep only the newest ``FAILURE_LOG_MAX_ROWS`` of each
    platform that got some (a deleted platform's are dropped)."""
    if not failures:
        return
    existing = existing_platforms({record.platform_id for record in failures})
    records = [record for record in failures if record.platform_id in existing]
    failures.clear()  # samples: a write that fails drops them, it is never retried forever
    # Everything through the database the rows are written to: the cap is read there, and
    # bulk_create itself asks the read database for its features.
    alias = connection_for(FailureRecord).alias
    rows = FailureRecord.objects.db_manager(alias)
    try:
        with transaction.atomic(using=alias):
            rows.bulk_create(records)
    except DatabaseError:
        logger.exception("Could not write %d failure log rows; dropped them", len(records))
        return
    limit = app_settings.FAILURE_LOG_MAX_ROWS
    for platform_id in existing:
        oldest_kept = (
            rows.filter(platform_id=platform_id)
            .order_by("-id")
            .values_list("id", flat=True)[limit - 1 : limit]
        )
        cut = list(oldest_kept)
        if cut:
            rows.filter(platform_id=platform_id, id__lt=cut[0]).delete()


def write_details_batch(batch: Details) -> None:
    """Write the rest of a batch once its counts are written (:func:`write_counts`):
    distinct users, secret and key use, the failure log. What is written leaves the
    batch, so a failure midway keeps the rest."""
    write_distinct(batch.distinct)
    write_secrets_used({pk: (u.platform_id, u.last) for pk, u in batch.secret_uses.items()})
    write_secret_uses(batch.secret_uses)
    write_last_used(PublicKey, batch.keys_used)
    write_failures(batch.failures)
