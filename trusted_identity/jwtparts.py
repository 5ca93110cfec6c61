"""What both token forms share: the reasons, the header's members, the claims and how
they are read and checked (CONTRACT sections 9 and 10).

Plain Python with no Django import. ``tokens`` (HS256, keyed with the platform's
secrets) and ``keytokens`` (ES256, EdDSA, RS256, verified with its public keys) differ
only in the signature and how its key is picked; everything after the signature
matched is here, once, so the two forms can't drift apart:

- **the header**: a JSON object with no member but ``alg``, ``typ`` (``JWT``) and
  ``kid`` (a string); ``crit``, ``jku``, ``jwk``, ``x5u``, ``x5c``, ``b64`` and every
  other member make it unacceptable (:func:`read_header`; the caller checks ``alg``);
- **the claims**: a JSON object with ``sub`` (a string), ``exp`` and ``iat`` (numbers,
  ``exp`` after ``iat``); ``nbf`` a number and ``jti`` a string if present; no ``aud``
  (:func:`parse_claims`), read without the JSON decoder when spelt as signers spell
  them;
- **the checks**: ``sub`` equals the user id, ``exp - iat`` at most the maximum age,
  ``exp`` after ``now - leeway``, ``iat``/``nbf`` not after ``now + leeway``
  (:func:`check_claims`).

Only canonical base64url is read (no padding, unused trailing bits zero): one token,
one spelling. Nothing here raises on any input.
"""

from __future__ import annotations

import binascii
import json
import math
import re
import string
from typing import Any

NO_MATCH = "no_match"
TOKEN_MALFORMED = "token_malformed"
TOKEN_SUBJECT_MISMATCH = "token_subject_mismatch"
TOKEN_TOO_LONG_LIVED = "token_too_long_lived"
TOKEN_EXPIRED = "token_expired"
#: The reasons of section 9, which both forms give.
REASONS = (NO_MATCH, TOKEN_MALFORMED, TOKEN_SUBJECT_MISMATCH, TOKEN_TOO_LONG_LIVED, TOKEN_EXPIRED)

#: What the checks need of a token's claims: ``(sub, iat, exp, nbf)``, ``nbf`` None when
#: absent. A plain tuple: a NamedTuple costs a tenth of the first sight's budget to build.
Claims = tuple[str, "int | float", "int | float", "int | float | None"]

HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})

_BASE64URL = bytes(string.ascii_letters + string.digits + "-_", "ascii")
_OUTSIDE_BASE64URL = bytes(byte for byte in range(256) if byte not in _BASE64URL)
#: base64url to the standard base64 alphabet (``-`` and ``_`` become ``+`` and ``/``,
#: the rest of base64url stays), every other byte a dot: the decoder skips dots, and
#: the HS256 form splits a token's translation at them, so a byte outside base64url
#: makes a segment too many (``tokens``).
URL_TO_STANDARD = bytes.maketrans(
    b"-_" + _OUTSIDE_BASE64URL, b"+/" + b"." * len(_OUTSIDE_BASE64URL)
)
#: By a segment's length modulo 4 (never 1): the last characters its canonical spelling
#: may end with, and the padding the decoder needs. The last character of a segment of
#: length 2 or 3 modulo 4 carries 4 or 2 unused bits, zero in the canonical spelling
#: (None: no unused bits). None of those characters is ``-`` or ``_``: the same sets
#: serve the standard alphabet.
CANONICAL_DECODING: dict[int, tuple[frozenset[int] | None, bytes]] = {
    0: (None, b""),
    2: (frozenset(b"AQgw"), b"=="),
    3: (frozenset(b"AEIMQUYcgkosw048"), b"="),
}


def b64decode(segment: bytes) -> bytes | None:
    """The bytes of an unpadded base64url segment (only base64url characters, which the
    caller's shape checked), or None unless it is the canonical encoding of those bytes."""
    decoding = CANONICAL_DECODING.get(len(segment) % 4)
    if decoding is None:
        return None
    canonical, padding = decoding
    if canonical is not None and segment[-1] not in canonical:
        return None  # unused trailing bits set: another spelling of the same bytes
    return binascii.a2b_base64(segment.translate(URL_TO_STANDARD) + padding)


def _text(segment: bytes) -> str | None:
    """The UTF-8 text of a base64url segment, or None (not canonical base64url, not UTF-8)."""
    raw = b64decode(segment)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def json_object(text: str | None) -> dict[str, Any] | None:
    """``text`` as ``json.loads`` reads it, without NaN or Infinity, if it is an object."""
    if text is None:
        return None
    try:
        try:  # the common case: no whitespace around the object
            value, end = _JSON.raw_decode(text)
        except ValueError:
            value, end = None, -1
        if end != len(text):
            value = _JSON.decode(text)  # what json.loads accepts, and nothing else
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


#: ``json.loads`` without NaN and Infinity, made once (``json.loads`` with an argument
#: builds a decoder per call).
_JSON = json.JSONDecoder(parse_constant=_refuse_constant)


def read_header(segment: str) -> dict[str, Any] | None:
    """The header segment as a JSON object, if nothing but its ``alg`` is left to check:
    only ``alg``, ``typ`` (``JWT`` in any case) and ``kid`` (a string); else None."""
    header = json_object(_text(segment.encode("ascii")))
    if header is None or not header.keys() <= HEADER_MEMBERS:
        return None
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        return None
    return header if isinstance(header.get("kid", ""), str) else None


def check_claims(
    claims: Claims, user_id: str, now: float, leeway: float, max_age: float
) -> str | None:
    """None when the claims hold for ``user_id`` at ``now``, else the reason."""
    sub, iat, exp, nbf = claims
    if sub != user_id:
        return TOKEN_SUBJECT_MISMATCH
    if exp - iat > max_age:
        return TOKEN_TOO_LONG_LIVED
    if exp <= now - leeway or iat > now + leeway or (nbf is not None and nbf > now + leeway):
        return TOKEN_EXPIRED
    return None


def _is_number(value: Any) -> bool:
    kind = type(value)  # exactly int or float: not bool, not a subclass
    return kind is int or (kind is float and math.isfinite(value))


#: The claims exactly as PyJWT, ``jsonwebtoken`` and the documentation's snippets write
#: them: a subject with no escape or control character (so the text between the quotes is the
#: string), then ``iat`` and ``exp`` as plain integers. What ``json.loads`` gives for
#: such a text is exactly its three groups, so it is read without the JSON decoder
#: (a fifth of a first verification); any other text goes through the decoder. Matched
#: on the UTF-8 bytes, not the text: no byte of a character beyond ASCII is a quote, a
#: backslash or a control character, so the bytes match exactly when the text would,
#: only the subject is decoded, and ``int`` reads the digits' bytes (faster than text).
_PLAIN_CLAIMS = re.compile(
    rb'\{"sub":"([^"\\\x00-\x1f]*)","iat":(0|[1-9][0-9]{0,15}),"exp":(0|[1-9][0-9]{0,15})\}'
)


def parse_claims(segment: bytes) -> Claims | None:
    """The claims of a base64url claims segment, or None (``token_malformed``)."""
    return parse_standard_claims(segment.translate(URL_TO_STANDARD))


def parse_standard_claims(segment: bytes) -> Claims | None:
    """:func:`parse_claims` of a segment already translated to the standard base64
    alphabet (``+`` and ``/``): HS256 translates a whole token once."""
    decoding = CANONICAL_DECODING.get(len(segment) % 4)  # b64decode, inline: the hot path
    if decoding is None:
        return None
    canonical, padding = decoding
    if canonical is not None and segment[-1] not in canonical:
        return None
    raw = binascii.a2b_base64(segment + padding)
    try:
        plain = _PLAIN_CLAIMS.fullmatch(raw)
        if plain is not None:
            sub, iat, exp = plain.groups()
            iat, exp = int(iat), int(exp)
            return (sub.decode("utf-8"), iat, exp, None) if exp > iat else None
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    claims = json_object(text)
    if claims is None or "aud" in claims:
        return None
    sub, iat, exp = claims.get("sub"), claims.get("iat"), claims.get("exp")
    if type(sub) is not str or not _is_number(iat) or not _is_number(exp) or not exp > iat:
        return None
    nbf = claims.get("nbf")
    if (nbf is not None or "nbf" in claims) and not _is_number(nbf):
        return None
    if "jti" in claims and type(claims["jti"]) is not str:
        return None
    return (sub, iat, exp, nbf)
