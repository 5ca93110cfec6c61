"""Grace periods as typed.

Against a real database: no mock of our own code. Cache invalidation runs on
commit; tests run inside a transaction that never commits, so writes whose effect
on a warm cache matters run inside ``with commit():`` (``conftest.py``), which runs
the on-commit callbacks as a real commit would.
"""

from datetime import timedelta

import pytest

from trusted_identity.exceptions import (
    InvalidRequest,
)
from trusted_identity.services import durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("30m", timedelta(minutes=30)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse_duration_accepts(text, expected):
    assert durations.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["5x", "-1h", "", "100d", "1.5h", "h", "24 h", None])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidRequest):
        durations.parse_duration(text)


@pytest.mark.parametrize("text", ["5", "1", "90", "24", "3600"])
def test_parse_duration_needs_a_unit(text):
    """A bare number other than 0 is an error, not seconds (CONTRACT section 5)."""
    with pytest.raises(InvalidRequest) as info:
        durations.parse_duration(text)
    message = info.value.message
    assert "unit" in message and "\n" not in message
    assert f"{text}m" in message  # says how to write it


@pytest.mark.parametrize(
    ("text", "advice"),
    [
        (" 24h", "'24h'"),
        ("24h ", "'24h'"),
        ("24H", "'24h'"),
        (" 0 ", "'0'"),
        ("7D", "'7d'"),
    ],
)
def test_parse_duration_is_exact_and_says_what_to_type(text, advice):
    """No guessing: spaces and upper-case units are refused, with the exact form to type."""
    with pytest.raises(InvalidRequest) as info:
        durations.parse_duration(text)
    assert advice in info.value.message


@pytest.mark.parametrize(
    "text", ["\u0661h", "\u0663\u0660m", "\uff12\uff14h", "2\u0664h", "\u00b2h"]
)
def test_parse_duration_takes_only_ascii_digits(text):
    """Arabic-Indic, full-width and superscript digits are digits to ``\\d``, not to us."""
    with pytest.raises(InvalidRequest):
        durations.parse_duration(text)
