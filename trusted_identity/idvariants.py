"""The usual ways a user id gets changed between the server that signs it and the
client that sends it: for the signature tester's hint ("this signature is for the id
'user-1 ' with a trailing space"), never for session start.

:func:`id_variants` lists, for one user id, the other ids a signature may have been
made over: trimmed or with trailing whitespace, case-changed, NFC/NFD-normalised,
another spelling of the same number, JSON-quoted or unquoted, URL-encoded or decoded.
A fixed list (at most :data:`MAX_VARIANTS`), each made in one pass over the id: the
work never grows with the number of characters beyond that. Plain Python, no Django.
"""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Context, Decimal, InvalidOperation
from typing import NamedTuple
from urllib.parse import quote, quote_plus, unquote, unquote_plus

#: The most variants tried for one id (the tester tries each against the keys once).
MAX_VARIANTS = 20
#: What reads as a number: an optional sign, digits with an optional fraction, an
#: optional exponent. Anchored and linear (no nested repetition).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
#: The longest number text rewritten (a 20-digit id is still a number; more is not).
_MAX_NUMBER_LENGTH = 40
#: Enough digits for any number of that length: nothing is rounded.
_PRECISION = _MAX_NUMBER_LENGTH + 2


class IdVariant(NamedTuple):
    """An id a signature may have been made over, and how it differs from the id given."""

    user_id: str
    change: str


def id_variants(user_id: str) -> list[IdVariant]:
    """The usual mistakes for ``user_id``, most likely first, without duplicates and
    without ``user_id`` itself; at most :data:`MAX_VARIANTS`."""
    candidates: list[tuple[str, str]] = []
    add = candidates.append
    stripped = user_id.strip()
    if stripped != user_id:
        add((stripped, _without_whitespace(user_id, stripped)))
    add((user_id + " ", "with a trailing space"))
    add((user_id + "\n", "with a trailing newline"))
    add((user_id + "\r\n", "with a trailing carriage return and newline (\\r\\n)"))
    add((user_id.lower(), "in lower case"))
    add((user_id.upper(), "in upper case"))
    add((user_id.casefold(), "case-folded"))
    add((unicodedata.normalize("NFC", user_id), "NFC-normalised (composed accents)"))
    add((unicodedata.normalize("NFD", user_id), "NFD-normalised (decomposed accents)"))
    candidates += _numbers(stripped)
    add((json.dumps(user_id, ensure_ascii=False), "JSON-quoted (with its double quotes)"))
    unquoted = _json_unquoted(user_id)
    if unquoted is not None:
        add((unquoted, "without its JSON quotes"))
    add((quote(user_id, safe=""), "URL-encoded"))
    add((quote_plus(user_id, safe=""), "URL-encoded as a form value (spaces as +)"))
    add((unquote(user_id), "URL-decoded"))
    add((unquote_plus(user_id), "URL-decoded as a form value (+ as a space)"))
    seen = {user_id}
    variants: list[IdVariant] = []
    for candidate, change in candidates:
        if candidate and candidate not in seen:
            seen.add(candidate)
            variants.append(IdVariant(candidate, change))
            if len(variants) == MAX_VARIANTS:
                break
    return variants


def _without_whitespace(user_id: str, stripped: str) -> str:
    leading = user_id[: len(user_id) - len(user_id.lstrip())]
    trailing = user_id[len(user_id.rstrip()) :]
    if leading and trailing:
        return "without its leading and trailing whitespace"
    return "without its leading whitespace" if leading else "without its trailing whitespace"


def _numbers(text: str) -> list[tuple[str, str]]:
    """Other spellings of the number ``text`` is: ``42`` for ``42.0``, ``042``, ``4.2e1``
    and the other way round; none when it is no number."""
    if len(text) > _MAX_NUMBER_LENGTH or not _NUMBER.fullmatch(text):
        return []
    try:
        value = Decimal(text)
    except InvalidOperation:
        return []
    if not value.is_finite() or abs(value.adjusted()) > _MAX_NUMBER_LENGTH:
        return []  # 1e999999 would be a million digits written out
    exact = Context(prec=_PRECISION)
    spellings: list[tuple[str, str]] = []
    if value == value.to_integral_value(context=exact):
        whole = str(int(value))
        spellings.append((whole, "the same number written as an integer"))
        spellings.append((whole + ".0", "the same number written as a float, with .0"))
        if not whole.startswith("-"):
            spellings.append(("0" + whole, "the same number with a leading zero"))
    else:
        plain = format(value.normalize(exact), "f")
        spellings.append((plain, "the same number written without exponent or trailing zeros"))
    scientific = _scientific(value, exact)
    if scientific is not None:
        spellings.append((scientific, "the same number in exponent notation"))
    return spellings


def _scientific(value: Decimal, exact: Context) -> str | None:
    """``4.2e1`` for 42, ``1e3`` for 1000: one digit before the point, no trailing zeros."""
    if value == 0:
        return None
    sign, digits, exponent = value.normalize(exact).as_tuple()
    if not isinstance(exponent, int):
        return None
    mantissa = "".join(map(str, digits))
    power = exponent + len(digits) - 1
    text = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{text}e{power}"


def _json_unquoted(user_id: str) -> str | None:
    """The string a JSON string literal holds (``"user-1"`` → ``user-1``), else None."""
    if len(user_id) < 2 or user_id[0] != '"' or user_id[-1] != '"':
        return None
    try:
        value = json.loads(user_id)
    except ValueError:
        return None
    return value if isinstance(value, str) else None
