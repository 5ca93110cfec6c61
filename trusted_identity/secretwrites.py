"""Counting what a previous secret verified since its retirement, for "may I end the old
secret's grace now?" (``services.secret_use``), and when each secret and public key
last verified a start (:func:`write_last_used`).

A batch (``countwrites.Details``) keeps each secret's uses with their moment and user,
so the flush splits them exactly at the secret's ``retired_at``, read in one query: the
starts at or after it are added to the secret's ``starts_since_retired``, their users
merged into ``users_since_retired``. A start counted while the process still believed
the secret current is counted all the same when it came after the rotation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections, router, transaction
from django.db.models import F

from .flushsql import retired_moments
from .models import PlatformSecret
from .sketch import DistinctSketch

logger = logging.getLogger("trusted_identity")

#: Uses of one secret a buffer keeps one by one (their moment and user) between flushes,
#: to tell exactly which came after the secret's retirement; older ones are folded.
MAX_BUFFERED_SECRET_USES = 1024


@dataclass
class SecretUses:
    """The starts one secret verified in a batch, to count those after its retirement.

    The newest ``MAX_BUFFERED_SECRET_USES`` are kept one by one (moment, user hash),
    so a flush splits them exactly at ``retired_at``; older ones are folded into
    ``folded`` (starts, users, first and last moment), counted after the retirement
    when any of them is (a batch spanning a rotation with that many uses: rare, and
    then "in use" rather than a wrong "unused").
    """

    platform_id: int
    uses: list[tuple[datetime, int | None]] = field(default_factory=list)
    folded: int = 0
    folded_users: DistinctSketch = field(default_factory=DistinctSketch)
    folded_first: datetime | None = None
    folded_last: datetime | None = None

    @property
    def last(self) -> datetime:
        """The last use (``PlatformSecret.last_verified_at``)."""
        moments = [at for at, _hashed in self.uses]
        return max([*moments, self.folded_last] if self.folded_last else moments)

    def add(self, at: datetime, hashed: int | None) -> None:
        self.uses.append((at, hashed))
        if len(self.uses) > MAX_BUFFERED_SECRET_USES:
            self.uses.sort(key=lambda use: use[0])
            half = len(self.uses) // 2
            old, self.uses = self.uses[:half], self.uses[half:]
            self.fold(len(old), [h for _at, h in old if h is not None], old[0][0], old[-1][0])

    def fold(self, n: int, hashes: Iterable[int], first: datetime, last: datetime) -> None:
        self.folded += n
        self.folded_users.add_hashes(hashes)
        self.folded_first = first if self.folded_first is None else min(self.folded_first, first)
        self.folded_last = last if self.folded_last is None else max(self.folded_last, last)

    def update(self, other: SecretUses) -> None:
        for at, hashed in other.uses:
            self.add(at, hashed)
        if other.folded:
            assert other.folded_first is not None and other.folded_last is not None
            self.folded_users.merge(other.folded_users)
            self.fold(other.folded, (), other.folded_first, other.folded_last)

    def since(self, retired_at: datetime) -> tuple[int, DistinctSketch]:
        """The starts at ``retired_at`` or after, and their users."""
        users = DistinctSketch()
        after = [hashed for at, hashed in self.uses if at >= retired_at]
        users.add_hashes(h for h in after if h is not None)
        n = len(after)
        if self.folded and self.folded_last is not None and self.folded_last >= retired_at:
            n += self.folded
            users.merge(self.folded_users)
        return n, users


def write_last_used(model: type, used: dict[int, tuple[int, datetime]]) -> None:
    """When each row (a ``PlatformSecret`` or a ``PublicKey``: ``{pk: (platform id, moment)}``)
    last verified a start: only ever forward, whatever another process wrote. Written
    rows leave ``used``; a deleted row's use is dropped with it.

    One parameterised ``UPDATE ... WHERE pk = %s AND (last IS NULL OR last < %s)`` per
    row, sent together with ``executemany`` (pipelined by psycopg 3), a few hundred rows
    a call: the condition keeps the later moment in the database itself, and the
    statement costs a tenth of what Django spent building a ``CASE`` over the rows
    (a session start counted inside a transaction pays it every time).
    """
    connection = connections[router.db_for_write(model)]
    quote, meta = connection.ops.quote_name, model._meta  # type: ignore[attr-defined]
    last_used = meta.get_field("last_verified_at")
    table, column, key = quote(meta.db_table), quote(last_used.column), quote(meta.pk.column)
    statement = (  # names from the model, quoted; every value is a parameter
        f"UPDATE {table} SET {column} = %s "  # noqa: S608
        f"WHERE {key} = %s AND ({column} IS NULL OR {column} < %s)"
    )
    items = list(used.items())
    for start in range(0, len(items), 500):
        chunk = items[start : start + 500]
        rows = []
        for pk, (_pid, moment) in chunk:
            at = last_used.get_db_prep_value(moment, connection)
            rows.append((at, pk, at))
        with connection.cursor() as cursor:
            cursor.executemany(statement, rows)
        for pk, _ in chunk:
            del used[pk]


def write_secret_uses(secret_uses: dict[int, SecretUses]) -> None:
    """Add each retired secret's starts (and users) at or after its ``retired_at`` to its
    counters: one query reads the batch's secrets' retirement, the few that have such
    starts are updated under a row lock (the users' sketch is merged, not added). Uses
    of a secret still current, or before its retirement, leave nothing; a deleted
    secret's are dropped. Written secrets leave ``secret_uses``."""
    if not secret_uses:
        return
    retired = retired_moments(secret_uses)
    since = {}
    for secret_id, uses in secret_uses.items():
        retired_at = retired.get(secret_id)
        if retired_at is not None:
            n, users = uses.since(retired_at)
            if n:
                since[secret_id] = (n, users)
    if since:
        with transaction.atomic(using=connections[router.db_for_write(PlatformSecret)].alias):
            rows = (
                PlatformSecret.objects.select_for_update()
                .filter(pk__in=sorted(since))
                .values_list("pk", "users_since_retired")
            )
            for secret_id, data in rows:
                n, users = since[secret_id]
                try:
                    stored = DistinctSketch.from_bytes(data)
                except ValueError:
                    logger.error("The users since retirement of secret #%s were damaged", secret_id)
                    stored = DistinctSketch()
                stored.merge(users)
                PlatformSecret.objects.filter(pk=secret_id).update(
                    starts_since_retired=F("starts_since_retired") + n,
                    users_since_retired=stored.to_bytes(),
                )
    secret_uses.clear()
