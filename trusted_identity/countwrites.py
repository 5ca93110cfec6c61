"""Writing the details of session starts: reasons, forms, secrets, versions, distinct
users, secret use and the failure log.

What ``outcomes`` gathers in a :class:`CountBatch` (the outcome counts and their
:class:`Details`, per flush) is written with these functions. Every write is
safe beside other processes writing the same rows: counts are ``count = count + n``,
distinct users are merged with a compare-and-set on the row's revision, secret use
only ever moves forward, and the failure log is capped per platform.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q

from .conf import app_settings
from .models import (
    DailyDetailCount,
    DetailCount,
    DistinctUsers,
    FailureRecord,
    Platform,
    PlatformSecret,
)
from .sketch import DistinctSketch

logger = logging.getLogger("trusted_identity")

#: How often a write is tried when its row appears or changes under it.
WRITE_ATTEMPTS = 10
#: What a client version beyond the day's limit is counted as.
OTHER = "other"

CountKey = tuple[int, datetime, str]  # (platform id, start of the hour, outcome)
DetailKey = tuple[int, datetime, str, str, str]  # platform, hour, dimension, value, outcome
VersionKey = tuple[int, date, str, str, str]  # platform, day, dimension, value, outcome
DistinctKey = tuple[int, date, str]  # platform, day, kind (identified | valid)


@dataclass
class Details:
    """Everything but the outcome counts that a batch of starts adds."""

    details: Counter[DetailKey] = field(default_factory=Counter)
    versions: Counter[VersionKey] = field(default_factory=Counter)
    distinct: defaultdict[DistinctKey, set[int]] = field(default_factory=lambda: defaultdict(set))
    #: secret id -> the platform and when it last verified a start
    secrets_used: dict[int, tuple[int, datetime]] = field(default_factory=dict)
    failures: list[FailureRecord] = field(default_factory=list)
    #: (platform id, secret id, grace end) of previous secrets seen verifying near their end
    grace_warnings: set[tuple[int, int, float]] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(
            self.details
            or self.versions
            or self.distinct
            or self.secrets_used
            or self.failures
            or self.grace_warnings
        )

    def update(self, other: Details) -> None:
        """Add ``other`` into this batch (a write that failed is kept for the next try)."""
        self.details.update(other.details)
        self.versions.update(other.versions)
        for key, hashes in other.distinct.items():
            self.distinct[key] |= hashes
        for secret_id, (platform_id, at) in other.secrets_used.items():
            self.note_secret(secret_id, platform_id, at)
        self.failures.extend(other.failures)
        self.grace_warnings |= other.grace_warnings

    def note_secret(self, secret_id: int, platform_id: int, at: datetime) -> None:
        known = self.secrets_used.get(secret_id)
        if known is None or known[1] < at:
            self.secrets_used[secret_id] = (platform_id, at)


@dataclass(slots=True)
class StartDetails:
    """The details of one session start, as ``services.counting`` found them."""

    details: tuple[DetailKey, ...] = ()
    versions: tuple[VersionKey, ...] = ()
    distinct: tuple[tuple[DistinctKey, int], ...] = ()
    secret_used: tuple[int, int, datetime] | None = None  # secret id, platform id, at
    failure: FailureRecord | None = None
    grace_warning: tuple[int, int, float] | None = None

    def add_to(self, batch: Details) -> None:
        for key in self.details:
            batch.details[key] += 1
        for key in self.versions:
            batch.versions[key] += 1
        for key, hashed in self.distinct:
            batch.distinct[key].add(hashed)
        if self.secret_used is not None:
            batch.note_secret(*self.secret_used)
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


def _platform_exists(platform_id: int) -> bool:
    return Platform.objects.filter(pk=platform_id).exists()


def add_count(model, key_fields: dict, count: int) -> None:
    """``count = count + n`` on one row of a count table: one UPDATE when the row exists,
    else an INSERT. The one increment of every count table.

    The increment happens in the database, so concurrent writers never lose each
    other's updates. A concurrent first INSERT, or ``prune`` moving the row into the
    daily counts between our UPDATE and INSERT, makes us try again; a deleted platform
    takes its counts with it.
    """
    rows = model.objects.filter(**key_fields)
    for _attempt in range(WRITE_ATTEMPTS):
        # Its own atomic block: a failure rolls back this write only, even inside a
        # caller's transaction, and leaves the caller free to keep the counts.
        with transaction.atomic():
            if rows.update(count=F("count") + count):
                return
            # Foreign keys are checked at commit (Django makes them DEFERRABLE INITIALLY
            # DEFERRED), so an INSERT for a deleted platform would only fail there, outside
            # the IntegrityError handler below, and the counts would be retried forever.
            if not _platform_exists(key_fields["platform_id"]):
                return
            try:
                with transaction.atomic():
                    model.objects.create(**key_fields, count=count)
                return
            except IntegrityError:
                pass  # inserted meanwhile by another writer, or folded away by prune: again
    raise IntegrityError(
        f"could not add {count} to {model.__name__} {key_fields} in {WRITE_ATTEMPTS} attempts"
    )


def write_details(details: Counter[DetailKey]) -> None:
    for (platform_id, hour, dimension, value, outcome), n in list(details.items()):
        add_count(
            DetailCount,
            {
                "platform_id": platform_id,
                "hour": hour,
                "dimension": dimension,
                "value": value,
                "outcome": outcome,
            },
            n,
        )
        del details[platform_id, hour, dimension, value, outcome]


def _counted_value(platform_id: int, day: date, dimension: str, value: str) -> str:
    """``value``, or ``other`` when the day already counts ``VERSIONS_PER_DAY`` others.

    Asked only when a value has no row yet that day, so a flood of made-up versions
    costs one small query per new value, and adds at most that many values a day.
    """
    rows = DailyDetailCount.objects.filter(platform_id=platform_id, day=day, dimension=dimension)
    if value == OTHER or rows.filter(value=value).exists():
        return value
    seen = rows.exclude(value=OTHER).values("value").distinct()
    if len(seen[: app_settings.VERSIONS_PER_DAY]) >= app_settings.VERSIONS_PER_DAY:
        return OTHER
    return value


def write_versions(versions: Counter[VersionKey]) -> None:
    for key, n in list(versions.items()):
        platform_id, day, dimension, value, outcome = key
        row = DailyDetailCount.objects.filter(
            platform_id=platform_id, day=day, dimension=dimension, value=value, outcome=outcome
        )
        if row.update(count=F("count") + n):  # the usual case: a value already counted
            del versions[key]
            continue
        value = _counted_value(platform_id, day, dimension, value)
        add_count(
            DailyDetailCount,
            {
                "platform_id": platform_id,
                "day": day,
                "dimension": dimension,
                "value": value,
                "outcome": outcome,
            },
            n,
        )
        del versions[key]


def merge_distinct(platform_id: int, day: date, kind: str, hashes: set[int]) -> None:
    """Merge user hashes into the day's sketch: read, merge, write if the row's revision
    is still the one read (else another process wrote meanwhile: again)."""
    rows = DistinctUsers.objects.filter(platform_id=platform_id, day=day, kind=kind)
    for _attempt in range(WRITE_ATTEMPTS):
        found = rows.values_list("sketch", "revision").first()
        if found is None:
            if not _platform_exists(platform_id):
                return
            sketch = DistinctSketch()
            sketch.add_hashes(hashes)
            try:
                with transaction.atomic():
                    DistinctUsers.objects.create(
                        platform_id=platform_id,
                        day=day,
                        kind=kind,
                        sketch=sketch.to_bytes(),
                        revision=1,
                    )
                return
            except IntegrityError:
                continue
        data, revision = found
        try:
            sketch = DistinctSketch.from_bytes(data)
        except ValueError:
            logger.error("Distinct users of platform #%s on %s were damaged", platform_id, day)
            sketch = DistinctSketch()
        before = sketch.to_bytes()
        sketch.add_hashes(hashes)
        after = sketch.to_bytes()
        if after == before:
            return  # nobody new
        if rows.filter(revision=revision).update(sketch=after, revision=revision + 1):
            return
    raise IntegrityError(f"could not merge distinct users of platform #{platform_id} on {day}")


def write_secrets_used(secrets_used: dict[int, tuple[int, datetime]]) -> None:
    for secret_id, (_platform_id, at) in list(secrets_used.items()):
        PlatformSecret.objects.filter(pk=secret_id).filter(
            Q(last_verified_at__isnull=True) | Q(last_verified_at__lt=at)
        ).update(last_verified_at=at)
        del secrets_used[secret_id]


def write_failures(failures: list[FailureRecord]) -> None:
    """Add sampled failures, then keep only the newest ``FAILURE_LOG_MAX_ROWS`` of each
    platform that got some (a deleted platform's are dropped)."""
    if not failures:
        return
    platform_ids = {record.platform_id for record in failures}
    existing = set(Platform.objects.filter(pk__in=platform_ids).values_list("pk", flat=True))
    records = [record for record in failures if record.platform_id in existing]
    failures.clear()  # samples: a write that fails drops them, it is never retried forever
    try:
        with transaction.atomic():
            FailureRecord.objects.bulk_create(records)
    except DatabaseError:
        logger.exception("Could not write %d failure log rows; dropped them", len(records))
        return
    limit = app_settings.FAILURE_LOG_MAX_ROWS
    for platform_id in existing:
        oldest_kept = (
            FailureRecord.objects.filter(platform_id=platform_id)
            .order_by("-id")
            .values_list("id", flat=True)[limit - 1 : limit]
        )
        cut = list(oldest_kept)
        if cut:
            FailureRecord.objects.filter(platform_id=platform_id, id__lt=cut[0]).delete()


def write_details_batch(batch: Details) -> None:
    """Write a whole batch; what is written leaves it, so a failure midway keeps the rest."""
    write_details(batch.details)
    write_versions(batch.versions)
    for key in list(batch.distinct):
        merge_distinct(*key, batch.distinct[key])
        del batch.distinct[key]
    write_secrets_used(batch.secrets_used)
    write_failures(batch.failures)
