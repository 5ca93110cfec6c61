"""Shortcuts the tests share, kept out of the app because production never needs them:
a yes/no verification, counts of an outcome written as session starts would, and a
wait that keeps a burst inside one fixed rate-limit window."""

from __future__ import annotations

import time
from datetime import datetime

from django.utils import timezone

from trusted_identity import outcomes
from trusted_identity.models import VerificationGeneration
from trusted_identity.services.counting import hour_start
from trusted_identity.services.lookup import PlatformSnapshot
from trusted_identity.services.verification import verify_signed


def verify_user_id(snapshot: PlatformSnapshot, user_id: str, signed: str) -> bool:
    """Whether ``signed`` (either form) is valid for ``user_id`` on this platform."""
    return verify_signed(snapshot, user_id, signed).valid


def record_outcome(
    platform_id: int, outcome: str, count: int = 1, at: datetime | None = None
) -> None:
    """Count ``count`` starts of ``outcome`` in the hour of ``at`` (now by default),
    through the one counting path (buffered, or at once as COUNT_FLUSH_INTERVAL says)."""
    outcomes.count(platform_id, hour_start(at or timezone.now()), outcome, count)


def read_generation() -> int:
    """The verification generation's number as the database holds it now."""
    row = VerificationGeneration.objects.filter(pk=VerificationGeneration.SINGLETON).first()
    return row.value if row else 0


def wait_out_window_edge(period: float, margin: float = 1.5) -> None:
    """Fixed-window rate limits (``ratelimit.hit``) count per ``period`` seconds since the
    epoch: a burst that must meet the limit sleeps past the next edge when fewer than
    ``margin`` seconds are left, so it can't straddle two windows (each with its own
    budget) and pass. ``margin`` is more than the burst takes."""
    left = period - time.time() % period
    if left < margin:
        time.sleep(left + 0.1)
