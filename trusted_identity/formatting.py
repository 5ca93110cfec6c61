"""One way to show a share, a count and a moment, for the admin and the CLI alike.

``percent(0.97234)`` is ``97.2%``, ``number(1204)`` is ``1,204`` and
``moment(dt)`` is ``2026-11-26 14:05 UTC``; a missing value is ``—``; ``form_shares``
says which share of the valid users signed in each form; ``visible(text)``
shows a client-given string (a user id) with its control and invisible characters
spelt out. The admin's
templates use them as filters (``{% load trusted_identity_format %}``), the
``trusted_identity`` command's human-readable output calls them; JSON output keeps
its own machine formats (ISO 8601, shares as fractions). Plain Python, no Django.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from datetime import timezone as dt_timezone

#: What a missing share or moment reads as.
NONE = "—"


def percent(share: float | None) -> str:
    """A share (0 to 1) as a percentage with one decimal: ``97.2%``; ``—`` for None."""
    if share is None:
        return NONE
    return f"{share * 100:.1f}%"


def number(count: int | None) -> str:
    """A count with thousands separators: ``3,310``; ``—`` for None."""
    return NONE if count is None else f"{count:,}"


def form_shares(valid_users: int, users_by_form: Mapping[str, int]) -> str:
    """The share of the valid users who signed in each form counted apart, in one line:
    ``token 20.7% · public-key 3.3%``; ``—`` without a valid user. The summary, the
    platform list and ``status`` say it alike."""
    if not valid_users:
        return NONE
    return " · ".join(f"{form} {percent(n / valid_users)}" for form, n in users_by_form.items())


def moment(value: datetime | None) -> str:
    """A moment in UTC to the minute: ``2026-11-26 14:05 UTC``; ``—`` for None.

    A naive datetime is taken as UTC (the app stores aware UTC datetimes).
    """
    if value is None:
        return NONE
    if value.tzinfo is not None:
        value = value.astimezone(dt_timezone.utc)
    return f"{value:%Y-%m-%d %H:%M} UTC"


#: Categories shown as ``<U+XXXX>``: controls, formatting (bidirectional overrides,
#: zero-width), separators other than the plain space, unassigned and private-use.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"})


def visible(text: str) -> str:
    """A client-given string with every control or invisible character spelt out as
    ``<U+XXXX>``, so a user id can't reverse, hide or colour the text around it
    (``"evil\\u202egnp.exe"`` reads ``evil<U+202E>gnp.exe``), and two ids that look the
    same on screen look different. Spaces other than U+0020 are spelt out too."""
    return "".join(
        f"<U+{ord(ch):04X}>"
        if unicodedata.category(ch) in _HIDDEN_CATEGORIES
        or (unicodedata.category(ch) == "Zs" and ch != " ")
        else ch
        for ch in text
    )
