"""Recording session starts per platform: outcomes per hour (UTC), and their details.

The counts are what tells an admin that signing is rolled out; the details say why
starts fail (reasons), which client versions still don't sign, which secret verified,
and how many distinct users are behind the starts. Writes go through the per-process
buffer of the runtime, written by ``trusted_identity.outcomes`` (atomic increments,
merged sketches).
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from datetime import timezone as dt_timezone
from typing import NamedTuple

from django.db import DatabaseError
from django.utils import timezone

from .. import outcomes, runtime
from ..conf import app_settings
from ..countwrites import StartDetails
from ..models import Dimension, DistinctUsers, FailureRecord, Outcome, SketchKey
from ..sketch import UserHasher

logger = logging.getLogger("trusted_identity")

#: What a version header that is absent is counted as; one that breaks the rules of
#: CONTRACT section 8 (1 to 32 printable ASCII characters) counts as ``unknown``.
NOT_SENT = "none"
UNKNOWN = "unknown"
MAX_VERSION_LENGTH = 32
#: The failure log keeps this much of a user id (the column's length).
FAILURE_USER_ID_LENGTH = FailureRecord._meta.get_field("user_id").max_length or 1024


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def client_version(raw: str | None) -> str:
    """An ``X-App-Version`` / ``X-Sdk-Version`` value as counted: as sent when it is 1 to
    32 printable ASCII characters, ``none`` when absent, else ``unknown`` (never an
    error: a client's diagnostics must not fail its session)."""
    if raw is None or raw == "":
        return NOT_SENT
    if len(raw) > MAX_VERSION_LENGTH or not raw.isascii() or not raw.isprintable():
        return UNKNOWN
    return raw


class ClientVersions(NamedTuple):
    app: str = NOT_SENT
    sdk: str = NOT_SENT

    @classmethod
    def from_meta(cls, meta: dict) -> ClientVersions:
        """From a request's ``META`` (WSGI environ): the two optional headers."""
        return cls(
            client_version(meta.get("HTTP_X_APP_VERSION")),
            client_version(meta.get("HTTP_X_SDK_VERSION")),
        )


NO_CLIENT = ClientVersions()


# Plain strings for the hot path (an enum member's ``.value`` is a descriptor call).
_FORM, _REASON, _SECRET = Dimension.FORM.value, Dimension.REASON.value, Dimension.SECRET.value
_KEY = Dimension.KEY.value
_APP, _SDK = Dimension.APP_VERSION.value, Dimension.SDK_VERSION.value
_VALID, _VISITOR = Outcome.VALID.value, Outcome.VISITOR.value
_IDENTIFIED, _VALID_USERS = DistinctUsers.IDENTIFIED, DistinctUsers.VALID
_FAILING_USERS = DistinctUsers.FAILING
_PLAIN = "plain"  # the default form, whose users are the valid ones without another form
_REJECTED = Outcome.REJECTED.value

#: The distinct users of the starts enforcement rejected in one hour (UTC) are the
#: ``DistinctUsers`` kind ``rejected:HH`` of that day: the "now" of an enforced platform
#: (last hour, last 24 hours) reads them; ``prune`` deletes them after ``REJECTED_HOURS_KEPT``.
REJECTED_KIND_PREFIX = "rejected:"
#: Whole UTC days the hourly rejected users are kept (today and yesterday cover the
#: last 24 hours; the daily ``identified`` users stay for readiness).
REJECTED_DAYS_KEPT = 2


def rejected_kind(hour: int) -> str:
    """The ``DistinctUsers`` kind of the users rejected in hour ``hour`` (0-23, UTC) of a day."""
    return f"{REJECTED_KIND_PREFIX}{hour:02d}"


def _load_user_hasher() -> UserHasher:
    return UserHasher(SketchKey.load())


def user_hasher() -> UserHasher | None:
    """The hasher keyed with the installation's distinct-user key, read once per process;
    None while the database can't be read (that start's user is then not counted as
    distinct)."""
    try:
        return runtime.current().user_hasher.get(_load_user_hasher)
    except DatabaseError:
        logger.warning("Trusted Identity could not read its distinct-user hashing key")
        return None


def user_sketches(
    platform_id: int,
    day: date,
    user_id: str,
    valid_form: str | None = None,
    rejected_hour: int | None = None,
) -> tuple:
    """The day's distinct-user sketches a start's user goes into, with the user's keyed
    hash: ``identified``; for a start that was not valid ``failing`` too (readiness);
    for a valid start (``valid_form``) ``valid``, and the users of its form unless plain
    (``DistinctUsers.form_kind``: token readiness); for a rejected start
    (``rejected_hour``, its UTC hour) the users rejected in that hour."""
    hasher = user_hasher()
    if hasher is None:
        return ()
    hashed = hasher(user_id)
    if rejected_hour is not None:
        return (
            ((platform_id, day, _IDENTIFIED), hashed),
            ((platform_id, day, _FAILING_USERS), hashed),
            ((platform_id, day, rejected_kind(rejected_hour)), hashed),
        )
    if valid_form is None:  # an identified start that was not valid
        return (
            ((platform_id, day, _IDENTIFIED), hashed),
            ((platform_id, day, _FAILING_USERS), hashed),
        )
    if valid_form == _PLAIN:
        return (
            ((platform_id, day, _IDENTIFIED), hashed),
            ((platform_id, day, _VALID_USERS), hashed),
        )
    return (
        ((platform_id, day, _IDENTIFIED), hashed),
        ((platform_id, day, _VALID_USERS), hashed),
        ((platform_id, day, DistinctUsers.form_kind(valid_form)), hashed),
    )


def record_start(
    platform_id: int,
    outcome: str,
    user_id: str | None,
    *,
    form: str | None = None,
    reason: str | None = None,
    secret_id: int | None = None,
    grace_end: float | None = None,
    key_id: int | None = None,
    client: ClientVersions = NO_CLIENT,
    at: datetime | None = None,
) -> None:
    """Count one decided session start with what is known about it.

    ``outcome`` is what was counted (``rejected`` for a start enforcement refused);
    ``form`` and ``reason`` come from verification when ``signed`` was sent (``reason``
    ``missing`` for an identified start without one, counted and logged like any other
    reason, enforcement on or off); ``secret_id`` and ``grace_end`` name
    the secret that verified a valid start and, for a previous one, when its grace ends;
    ``key_id`` the public key that verified it (its last use and 24-hour count).
    """
    now = at or timezone.now()
    hour = hour_start(now)
    utc_now = now.astimezone(dt_timezone.utc)
    day = utc_now.date()
    details: list = []
    if form is not None:
        details.append((platform_id, hour, _FORM, form, outcome))
    if reason is not None:
        details.append((platform_id, hour, _REASON, reason, outcome))
    distinct: tuple = ()
    if user_id is not None:
        if outcome == _VALID:
            distinct = user_sketches(platform_id, day, user_id, form or _PLAIN)
        else:
            rejected_hour = utc_now.hour if outcome == _REJECTED else None
            distinct = user_sketches(platform_id, day, user_id, rejected_hour=rejected_hour)
    secret_used = grace_warning = None
    if secret_id is not None:
        details.append((platform_id, hour, _SECRET, str(secret_id), outcome))
        user = distinct[0][1] if distinct else None  # the user's hash, for "users since"
        secret_used = (secret_id, platform_id, now, user)
        lead = app_settings.ALERT_GRACE_ENDING_WITHIN
        ending_soon = (
            grace_end is not None
            and lead is not None
            and grace_end - now.timestamp() <= lead.total_seconds()
        )
        if ending_soon:
            grace_warning = (platform_id, secret_id, grace_end)
    key_used = None
    if key_id is not None:
        details.append((platform_id, hour, _KEY, str(key_id), outcome))
        key_used = (key_id, platform_id, now)
    failure = None
    if user_id is not None and outcome not in (_VALID, _VISITOR):
        sampler = runtime.current().failure_sampler  # per reason: FAILURE_LOG_PER_SECOND
        if sampler.take(platform_id, reason or "", time.time()):
            failure = FailureRecord(
                platform_id=platform_id,
                at=now,
                outcome=outcome,
                reason=reason or "",
                user_id=user_id[:FAILURE_USER_ID_LENGTH],  # MAX_USER_ID_LENGTH may be more
                app_version=client.app,
                sdk_version=client.sdk,
            )
    versions = (
        (platform_id, day, _APP, client.app, outcome),
        (platform_id, day, _SDK, client.sdk, outcome),
    )
    outcomes.count_start(
        platform_id,
        hour,
        outcome,
        StartDetails(
            details=tuple(details),
            versions=versions,
            distinct=distinct,
            secret_used=secret_used,
            key_used=key_used,
            failure=failure,
            grace_warning=grace_warning,
        ),
    )
