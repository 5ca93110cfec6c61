"""Grace periods as people type them (``0``, ``30m``, ``24h``, ``7d``) and say them."""

from __future__ import annotations

import re
from datetime import timedelta

from ..exceptions import InvalidRequest

#: ASCII digits and a lower-case unit, nothing around them: ``re.ASCII`` keeps ``\d`` from
#: matching other scripts' digits (an Arabic-Indic one, U+0661), and no ``strip`` or
#: ``lower`` guesses what was meant.
_DURATION_RE = re.compile(r"([0-9]{1,6})([smhdw]?)", re.ASCII)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_GRACE = timedelta(days=90)


def parse_duration(text: str, maximum: timedelta = MAX_GRACE) -> timedelta:
    """``"0"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"90s"`` or ``"2w"`` as a timedelta.

    A number needs its unit: ``"5"`` could mean seconds, minutes or hours, and a
    grace period guessed wrong keeps a leaked secret valid, or locks clients out.
    Only ``"0"`` stands alone (zero is zero in any unit). The form is exact: ASCII
    digits and a lower-case unit, no spaces (``"24H"``, ``" 24h"`` and Arabic-Indic digits are
    refused, each with what to type instead).
    """
    match = _DURATION_RE.fullmatch(text) if isinstance(text, str) else None
    if not match and isinstance(text, str):
        fixed = text.strip().lower()
        if fixed != text and _DURATION_RE.fullmatch(fixed):
            raise InvalidRequest(
                f"invalid duration {text!r}: write it as {fixed!r} "
                "(ASCII digits and a lower-case unit, no spaces)"
            )
    if not match:
        raise InvalidRequest(
            f"invalid duration {text!r}: use a number and a unit, such as 0, 30m, 24h or 7d"
        )
    number, unit = int(match.group(1)), match.group(2)
    if not unit:
        if number:
            raise InvalidRequest(
                f"invalid duration {text!r}: a number needs a unit (s, m, h, d or w), "
                f"such as {number}m or {number}h; only 0 stands alone"
            )
        return timedelta(0)
    value = timedelta(seconds=number * _DURATION_UNITS[unit])
    if value > maximum:
        raise InvalidRequest(f"duration {text!r} is longer than the {maximum.days}-day maximum")
    return value


def describe_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "none (revoked at once)"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"
