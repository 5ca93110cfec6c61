"""What session starts leave behind: outcome counts per hour and day, their details
(reasons, forms, secrets, client versions), distinct users, the failure log, and the
bookkeeping of prune and alerts.
"""

from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .core import Outcome, Platform


class CountFields(models.Model):
    """What every count table holds beside its platform and period: an outcome and how many
    session starts had it. The hourly and daily tables, of outcomes and of details, share
    it; each declares its own platform key (its ``related_name``) and period column."""

    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    count = models.PositiveBigIntegerField(_("count"), default=0)

    class Meta:
        abstract = True


class OutcomeCount(CountFields):
    """How many session starts of one platform had one outcome in one hour (UTC).

    Kept for ``HOURLY_RETENTION``; ``prune`` folds older hours into
    :class:`DailyOutcomeCount`. The primary key is the natural one, so the table
    carries no surrogate id and no index beyond it; PostgreSQL also gets a BRIN index
    on the hour (rows arrive in time order), for figures across all platforms.
    """

    pk = models.CompositePrimaryKey("platform", "hour", "outcome")
    platform = models.ForeignKey(
        Platform,
        on_delete=models.CASCADE,
        related_name="outcome_counts",
        db_index=False,  # the primary key's first column
    )
    hour = models.DateTimeField(_("hour"))

    class Meta:
        ordering = ["platform_id", "-hour", "outcome"]
        verbose_name = _("outcome count")
        verbose_name_plural = _("outcome counts")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.hour:%Y-%m-%d %H}:00 {self.outcome}={self.count}"


class DailyOutcomeCount(CountFields):
    """The hourly counts of one platform, outcome and UTC day, once they are older than
    ``HOURLY_RETENTION``; kept for ``DAILY_RETENTION``, then deleted by ``prune``."""

    pk = models.CompositePrimaryKey("platform", "day", "outcome")
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="daily_counts", db_index=False
    )
    day = models.DateField(_("day"))

    class Meta:
        ordering = ["platform_id", "-day", "outcome"]
        verbose_name = _("daily outcome count")
        verbose_name_plural = _("daily outcome counts")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.day:%Y-%m-%d} {self.outcome}={self.count}"


class DailyOutcomeTotal(CountFields):
    """All the session starts of one platform and UTC day with one outcome, kept as the
    hourly counts are written (in the same transaction): what the window's figures read,
    a row a day instead of 24 (``status`` of thousands of platforms, docs/performance.md).

    Neither folded nor changed by ``prune``, which deletes it past ``DAILY_RETENTION``;
    ``first_hour`` is the earliest hour counted that day (the figures' observed span).
    """

    pk = models.CompositePrimaryKey("platform", "day", "outcome")
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="day_totals", db_index=False
    )
    # Indexed: a window's days of every platform are a few of the table's (7 of 400).
    day = models.DateField(_("day"), db_index=True)
    first_hour = models.DateTimeField(_("first hour counted"))

    class Meta:
        ordering = ["platform_id", "-day", "outcome"]
        verbose_name = _("daily outcome total")
        verbose_name_plural = _("daily outcome totals")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.day:%Y-%m-%d} {self.outcome}={self.count}"


class PruneRun(models.Model):
    """One run of ``prune``: when, and what it folded and deleted (the latest tells the
    admin and the system checks whether retention is kept)."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    hourly_rows_folded = models.PositiveBigIntegerField(default=0)
    daily_rows_deleted = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]
        get_latest_by = "started_at"
        verbose_name = _("prune run")
        verbose_name_plural = _("prune runs")

    def __str__(self) -> str:
        return f"prune run of {self.started_at:%Y-%m-%d %H:%M}"


class Dimension(models.TextChoices):
    """What a detail count counts starts by, beside their outcome (CONTRACT section 8)."""

    REASON = "reason", _("Reason")  # why a start was invalid (or rejected as invalid)
    FORM = "form", _("Signature form")  # plain | token | public-key, of starts that sent one
    SECRET = "secret", _("Secret")  # the id of the secret that verified a valid start
    KEY = "key", _("Public key")  # the id of the public key that verified a valid start
    APP_VERSION = "app_version", _("App version")  # X-App-Version
    SDK_VERSION = "sdk_version", _("SDK version")  # X-Sdk-Version


class DetailCountFields(CountFields):
    """What a detail count counts: starts with one value of one dimension and an outcome."""

    dimension = models.CharField(_("dimension"), max_length=16, choices=Dimension.choices)
    value = models.CharField(_("value"), max_length=40)

    class Meta:
        abstract = True


class DetailCount(DetailCountFields):
    """Starts of one platform in one hour (UTC) by one detail and outcome: the reasons of
    invalid starts, the forms, the secrets that verified. Kept and folded like
    :class:`OutcomeCount` (``prune`` moves past ``HOURLY_RETENTION`` into
    :class:`DailyDetailCount`)."""

    pk = models.CompositePrimaryKey("platform", "hour", "dimension", "value", "outcome")
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="detail_counts", db_index=False
    )
    hour = models.DateTimeField(_("hour"), db_index=True)

    class Meta:
        ordering = ["platform_id", "-hour", "dimension", "value", "outcome"]
        verbose_name = _("detail count")
        verbose_name_plural = _("detail counts")

    def __str__(self) -> str:
        return (
            f"{self.platform_id} {self.hour:%Y-%m-%d %H}:00 {self.dimension}={self.value} "
            f"{self.outcome}={self.count}"
        )


class DailyDetailCount(DetailCountFields):
    """Detail counts past ``HOURLY_RETENTION``, by UTC day; the client versions are counted
    by day from the start, in ``VERSIONS_PER_DAY`` slots kept by weight (Space-Saving).
    ``prune`` deletes rows past ``DAILY_RETENTION``."""

    pk = models.CompositePrimaryKey("platform", "day", "dimension", "value", "outcome")
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="daily_detail_counts", db_index=False
    )
    day = models.DateField(_("day"), db_index=True)
    #: Client versions only: how much this value's starts may have been before it got
    #: its slot (counted in ``other`` then; the Space-Saving error, see
    #: ``countwrites.merge_version_slots``). 0 for every other row.
    max_error = models.PositiveBigIntegerField(_("maximum error"), default=0, db_default=0)

    class Meta:
        ordering = ["platform_id", "-day", "dimension", "value", "outcome"]
        verbose_name = _("daily detail count")
        verbose_name_plural = _("daily detail counts")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.day:%Y-%m-%d} {self.dimension}={self.value} {self.count}"


class DailyDetailTotal(DetailCountFields):
    """The detail counts of one platform and UTC day (reasons, forms, secrets, keys), kept
    as the hourly ones are written, in the same transaction: what a window's reasons and
    forms read (``daytotals``), as :class:`DailyOutcomeTotal` is for its outcomes. The
    client versions are daily from the start (:class:`DailyDetailCount`) and have none.
    Neither folded nor changed by ``prune``, which deletes it past ``DAILY_RETENTION``."""

    pk = models.CompositePrimaryKey("platform", "day", "dimension", "value", "outcome")
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="detail_day_totals", db_index=False
    )
    day = models.DateField(_("day"), db_index=True)

    class Meta:
        ordering = ["platform_id", "-day", "dimension", "value", "outcome"]
        verbose_name = _("daily detail total")
        verbose_name_plural = _("daily detail totals")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.day:%Y-%m-%d} {self.dimension}={self.value} {self.count}"


class DistinctUsers(models.Model):
    """The distinct user ids of one platform's starts in one UTC day, as a sketch
    (``trusted_identity.sketch``: exact up to 2,048 users, then a HyperLogLog of 16 KiB,
    a few KiB compressed): ``identified`` for every start naming a user, ``valid`` for
    those with a valid signature, ``failing`` for those with a start that was not valid,
    ``form:<form>`` (:meth:`form_kind`) for those whose valid signature had a form other
    than plain (``form:token``: the readiness of token-only; ``form:public-key``: the
    readiness of public-key-only), and ``rejected:HH`` for the users enforcement
    rejected in hour HH (UTC) of that day (``counting.rejected_kind``; kept two days, for
    the "now" of an enforced platform). Readiness merges the days of its window.

    Many processes merge into one row: ``revision`` makes each write a compare-and-set,
    so none overwrites another's users. ``prune`` deletes rows past ``DAILY_RETENTION``.
    """

    IDENTIFIED = "identified"
    VALID = "valid"
    #: Users with at least one identified start that was not valid (invalid, missing or
    #: rejected): those enforcement would lock out on some device, even if another of
    #: their starts was valid.
    FAILING = "failing"

    pk = models.CompositePrimaryKey("platform", "day", "kind")
    platform = models.ForeignKey(
        Platform, on_delete=models.CASCADE, related_name="distinct_users", db_index=False
    )
    day = models.DateField(_("day"), db_index=True)
    kind = models.CharField(_("kind"), max_length=16)
    sketch = models.BinaryField(_("sketch"))
    revision = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["platform_id", "-day", "kind"]
        verbose_name = _("distinct users")
        verbose_name_plural = _("distinct users")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.day:%Y-%m-%d} {self.kind}"

    @staticmethod
    def form_kind(form: str) -> str:
        """The kind counting the users of valid starts signed in ``form`` (token; any
        form added later is counted alike, without a migration)."""
        return f"form:{form}"


def _new_sketch_key() -> bytes:
    return secrets.token_bytes(32)  # sketch.KEY_BYTES


class SketchKey(models.Model):
    """The installation's key for hashing user ids into :class:`DistinctUsers` sketches.

    One random row, made on first use: every process and host hashes alike, so their
    sketches merge, and it outlives ``SECRET_KEY`` rotations, which would otherwise
    count every user twice. Read once per process (``counting.sketch_key``); never
    logged, shown, or sent to a client. Without it a client could choose user ids
    whose hashes inflate the distinct counts (``trusted_identity.sketch.user_hash``).
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    key = models.BinaryField(default=_new_sketch_key, editable=False)

    class Meta:
        verbose_name = _("distinct-user hashing key")
        verbose_name_plural = _("distinct-user hashing key")
        constraints = [models.CheckConstraint(condition=Q(id=1), name="ti_one_sketch_key")]

    def __str__(self) -> str:
        return "distinct-user hashing key"  # never the key

    @classmethod
    def load(cls) -> bytes:
        """The key, made now if this is the installation's first use (two processes
        racing to make it read the one that won)."""
        row, _ = cls.objects.get_or_create(pk=cls.SINGLETON)
        return bytes(row.key)


class FailureRecord(models.Model):
    """One sampled invalid, missing or rejected start, for the failure log.

    Sampled (at most ``FAILURE_LOG_PER_SECOND`` per platform, second and process) and
    capped (the newest ``FAILURE_LOG_MAX_ROWS`` per platform), so a flood of forged
    starts writes a bounded number of rows; ``prune`` deletes rows past
    ``FAILURE_LOG_RETENTION``. Holds the user id the client claimed, never ``signed``.
    """

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="failures")
    at = models.DateTimeField(_("at"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    reason = models.CharField(_("reason"), max_length=32, blank=True)
    user_id = models.CharField(_("user id"), max_length=1024)
    app_version = models.CharField(_("app version"), max_length=40, blank=True)
    sdk_version = models.CharField(_("SDK version"), max_length=40, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["platform", "-at"], name="ti_failure_platform_at")]
        verbose_name = _("failed start")
        verbose_name_plural = _("failed starts")

    def __str__(self) -> str:
        return f"{self.platform_id} {self.at:%Y-%m-%d %H:%M:%S} {self.outcome} {self.reason}"


class AlertSent(models.Model):
    """That one alert went out, so that every process sends it once (the unique key is
    the platform, the kind of alert and what it is about: an hour, a secret)."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(_("kind"), max_length=32)
    key = models.CharField(_("key"), max_length=64)
    sent_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "kind", "key"], name="ti_alert_once"),
        ]
        verbose_name = _("alert sent")
        verbose_name_plural = _("alerts sent")

    def __str__(self) -> str:
        return f"{self.kind} alert for platform #{self.platform_id} ({self.key})"
