"""Rate strings, ``"<count>/<s|m|h>"`` or ``"off"``, as the rate-limit settings hold them.

Plain Python, so that the settings table (``conf.py``) validates a rate with the same
parser the rate limits count with, without importing the cache machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}
#: The words (and the empty string) that turn a limit off.
OFF = frozenset({"", "off", "none", "0"})


class RateError(ValueError):
    """A rate string that does not parse; the message says what it must be."""


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds


def parse_rate(text: str | None) -> Rate | None:
    """``"600/m"`` as a Rate; ``"off"`` (or empty, or None) as None."""
    if text is None or str(text).strip().lower() in OFF:
        return None
    match = _RATE_RE.match(str(text))
    if not match or int(match.group(1)) < 1:
        raise RateError(f"invalid rate {text!r}: use <count>/<s|m|h>, such as 600/m, or off")
    return Rate(int(match.group(1)), _PERIODS[match.group(2).lower()])
