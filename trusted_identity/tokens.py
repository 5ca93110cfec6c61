"""The expiring signature form: HS256 JSON Web Tokens in ``signed`` (CONTRACT section 9).

Plain Python with no Django import; PyJWT is the one library it uses. A token is
``base64url(header) "." base64url(claims) "." base64url(HMAC-SHA256(key, first two
parts))``, keyed with the UTF-8 bytes of the platform secret: what PyJWT's
``jwt.encode(..., algorithm="HS256")``, Node's ``jsonwebtoken`` and the README's
plain-``crypto`` snippet all make.

:func:`verify_token` answers ``None`` for a valid token, else the reason:

1. **Shape, before anything is decoded**: at most ``max_length`` characters, three
   base64url segments without padding, the last one 43 characters (32 bytes).
   Anything else is ``token_malformed``.
2. **Header**: a JSON object whose ``alg`` is exactly ``HS256``, with no member but
   ``alg``, ``typ`` (``JWT``) and ``kid`` (ignored: every still-valid secret is
   tried, so nothing in a token picks its key). ``none``, every other algorithm,
   ``crit``, ``jku``, ``jwk``, ``x5u``, ``x5c`` and ``b64`` are ``token_malformed``.
   Checked headers are remembered (signers send one or two distinct ones).
3. **Signature**: the HMAC of the first two segments under every still-valid key,
   each compared in constant time with the decoded signature, never stopping at the
   first match, as the plain form does. No match is ``no_match``. Nothing of the
   claims is decoded before the signature matched.
4. **Claims**: a JSON object with ``sub`` (a string), ``exp`` and ``iat`` (numbers,
   ``exp`` after ``iat``); ``nbf`` a number and ``jti`` a string if present; no
   ``aud`` (a token made for an audience was not made for this check); else
   ``token_malformed``. Then ``sub`` must equal the user id exactly
   (``token_subject_mismatch``), ``exp - iat`` must be at most ``max_age``
   (``token_too_long_lived``), ``exp`` after ``now - leeway`` and ``iat``/``nbf``
   not after ``now + leeway`` (``token_expired``: outside its validity window,
   which is also what a signing server's clock off by more than the leeway gives).
5. **PyJWT, the verifier of record**: a token that passed 1 to 4 is valid only once
   ``jwt.decode`` accepted it with the matched key (``algorithms=["HS256"]``, ``sub``,
   ``iat`` and ``exp`` required) and its ``sub`` is the user id. PyJWT's time checks
   are off because the clock is the caller's (``now``): step 4 does them. Its verdict
   does not depend on the time, so it is remembered per token and key (bounded): a
   token presented again repeats only the key, subject, lifetime and time checks.

:func:`verify_token_match` also names the key the signature matched (which secret
verified a start); :func:`match_index` compares only the signature, under keys that
never verify, to say why a token matched none of those that do (``other_platform``,
``expired_secret``).

Nothing here raises: every input gives ``None`` or a reason.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import jwt

from .signing import HmacKey

logger = logging.getLogger("trusted_identity")

ALGORITHM = "HS256"
#: The longest token accepted unless the caller says otherwise (see the README).
DEFAULT_MAX_LENGTH = 4096

NO_MATCH = "no_match"
TOKEN_MALFORMED = "token_malformed"
TOKEN_SUBJECT_MISMATCH = "token_subject_mismatch"
TOKEN_TOO_LONG_LIVED = "token_too_long_lived"
TOKEN_EXPIRED = "token_expired"
REASONS = (NO_MATCH, TOKEN_MALFORMED, TOKEN_SUBJECT_MISMATCH, TOKEN_TOO_LONG_LIVED, TOKEN_EXPIRED)

_MALFORMED: tuple[str, None] = (TOKEN_MALFORMED, None)
_NO_MATCH: tuple[str, None] = (NO_MATCH, None)
_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")
_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})
_PYJWT_OPTIONS: Any = {
    "verify_signature": True,
    "require": ["sub", "iat", "exp"],
    # The clock is the caller's: the time checks are in _check_claims.
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_iss": False,
    "verify_aud": True,  # no audience expected: a token that names one is refused
}

#: Checked header segments: whether each is acceptable (few distinct ones in practice).
_headers: dict[str, bool] = {}
_HEADERS_MAX = 256


class Claims(NamedTuple):
    sub: str
    iat: int | float
    exp: int | float
    nbf: int | float | None


class _Verified(NamedTuple):
    key: HmacKey
    claims: Claims


#: Tokens PyJWT accepted, with the key that matched: PyJWT's verdict, remembered.
_verified: dict[str, _Verified] = {}
_VERIFIED_MAX = 4096
_VERIFIED_MAX_LENGTH = 1024  # longer tokens are verified every time, never remembered


def looks_like_token(signed: str) -> bool:
    """Whether ``signed`` is meant as a token (three dot-separated parts), not the plain form."""
    return signed.count(".") == 2


def verify_token(
    keys: Sequence[HmacKey],
    user_id: str,
    token: str,
    *,
    now: float,
    leeway: float,
    max_age: float,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> str | None:
    """``None`` if ``token`` is valid for ``user_id`` under one of ``keys`` at ``now``, else
    the reason (one of :data:`REASONS`). Never raises."""
    return verify_token_match(
        keys, user_id, token, now=now, leeway=leeway, max_age=max_age, max_length=max_length
    )[0]


def verify_token_match(
    keys: Sequence[HmacKey],
    user_id: str,
    token: str,
    *,
    now: float,
    leeway: float,
    max_age: float,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> tuple[str | None, HmacKey | None]:
    """As :func:`verify_token`, with the key of ``keys`` the token's signature matched:
    ``(None, key)`` when valid, ``(reason, key)`` when the signature matched but the
    claims did not pass, ``(reason, None)`` when no key matched. Never raises."""
    try:
        return _verify(keys, user_id, token, now, leeway, max_age, max_length)
    except Exception as exc:  # no input may escape as an error; the reason says enough
        logger.error("Trusted Identity token verification failed (%s)", type(exc).__name__)
        return TOKEN_MALFORMED, None


def match_index(keys: Sequence[HmacKey], token: str, max_length: int = DEFAULT_MAX_LENGTH) -> int:
    """The index in ``keys`` of the first key ``token``'s signature matches, or -1.

    Only the signature (HMAC of the first two segments) is compared, under every key,
    in constant time and without stopping at a match; nothing is decoded. For the
    diagnosis of a token that matched none of the still-valid keys. Never raises.
    """
    if len(token) > max_length or not _SHAPE.fullmatch(token):
        return -1
    signature = _signature_bytes(token[token.rindex(".") + 1 :])
    if signature is None:
        return -1
    message = token[: token.rindex(".")].encode("ascii")
    found = -1
    for index, key in enumerate(keys):  # every key, whatever the earlier ones gave
        if hmac.compare_digest(key.digest(message), signature) and found < 0:
            found = index
    return found


def _verify(
    keys: Sequence[HmacKey],
    user_id: str,
    token: str,
    now: float,
    leeway: float,
    max_age: float,
    max_length: int,
) -> tuple[str | None, HmacKey | None]:
    known = _verified.get(token)
    if known is not None and known.key in keys:  # HmacKey has no __eq__: identity
        return _check_claims(known.claims, user_id, now, leeway, max_age), known.key
    if len(token) > max_length or not _SHAPE.fullmatch(token):
        return _MALFORMED
    header_end = token.index(".")
    payload_end = token.rindex(".")
    header = token[:header_end]
    header_ok = _headers.get(header)
    if header_ok is None:
        header_ok = _header_is_acceptable(header)
        if len(_headers) >= _HEADERS_MAX:
            _headers.clear()
        _headers[header] = header_ok
    if not header_ok:
        return _MALFORMED
    signature = _signature_bytes(token[payload_end + 1 :])
    if signature is None:
        return _MALFORMED
    message = token[:payload_end].encode("ascii")
    matched = None
    for key in keys:  # every key, whatever the earlier ones gave
        if hmac.compare_digest(key.digest(message), signature) and matched is None:
            matched = key
    if matched is None:
        return _NO_MATCH
    claims = _parse_claims(token[header_end + 1 : payload_end])
    if claims is None:
        return TOKEN_MALFORMED, matched
    reason = _check_claims(claims, user_id, now, leeway, max_age)
    if reason is not None:
        return reason, matched
    if not _pyjwt_accepts(token, matched, user_id):
        return TOKEN_MALFORMED, matched
    if len(token) <= _VERIFIED_MAX_LENGTH:
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified[token] = _Verified(matched, claims)
    return None, matched


def _check_claims(
    claims: Claims, user_id: str, now: float, leeway: float, max_age: float
) -> str | None:
    if claims.sub != user_id:
        return TOKEN_SUBJECT_MISMATCH
    if claims.exp - claims.iat > max_age:
        return TOKEN_TOO_LONG_LIVED
    if (
        claims.exp <= now - leeway
        or claims.iat > now + leeway
        or (claims.nbf is not None and claims.nbf > now + leeway)
    ):
        return TOKEN_EXPIRED
    return None


def _pyjwt_accepts(token: str, key: HmacKey, user_id: str) -> bool:
    try:
        claims = jwt.decode(token, key.secret_bytes, algorithms=[ALGORITHM], options=_PYJWT_OPTIONS)
    except jwt.PyJWTError as exc:
        logger.warning("PyJWT refused a token the pre-check accepted (%s)", type(exc).__name__)
        return False
    return claims.get("sub") == user_id


#: The last of 43 base64url characters carries 2 unused bits, which must be zero.
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _signature_bytes(segment: str) -> bytes | None:
    """The 32 bytes of a 43-character base64url segment (the shape was checked), or None
    unless it is their canonical spelling. The fast path of every token, forged or not."""
    if segment[-1] not in _CANONICAL_LAST:
        return None
    return binascii.a2b_base64(segment.encode("ascii").translate(_URL_TO_STANDARD) + b"=")


def _b64decode(segment: str) -> bytes | None:
    """The bytes of an unpadded base64url segment, or None unless it is the canonical encoding."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment.encode("ascii"):
        return None  # unused trailing bits set: another spelling of the same bytes
    return raw


def _json_object(segment: str) -> dict[str, Any] | None:
    raw = _b64decode(segment)
    if raw is None:
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _header_is_acceptable(segment: str) -> bool:
    header = _json_object(segment)
    if header is None or header.get("alg") != ALGORITHM or not header.keys() <= _HEADER_MEMBERS:
        return False
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        return False
    return isinstance(header.get("kid", ""), str)


def _is_number(value: Any) -> bool:
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _parse_claims(segment: str) -> Claims | None:
    claims = _json_object(segment)
    if claims is None or "aud" in claims:
        return None
    sub, iat, exp, nbf = claims.get("sub"), claims.get("iat"), claims.get("exp"), claims.get("nbf")
    if not isinstance(sub, str) or not _is_number(iat) or not _is_number(exp) or not exp > iat:
        return None
    if ("nbf" in claims and not _is_number(nbf)) or not isinstance(claims.get("jti", ""), str):
        return None
    return Claims(sub, iat, exp, nbf)


def make_token(key: HmacKey, user_id: str, issued_at: int, expires_at: int) -> str:
    """An HS256 token for ``user_id``, valid from ``issued_at`` to ``expires_at`` (Unix times)."""
    return jwt.encode(
        {"sub": user_id, "iat": issued_at, "exp": expires_at},
        key.secret_bytes,
        algorithm=ALGORITHM,
    )


def clear() -> None:
    """Forget the remembered headers and PyJWT verdicts (keys changed, tests)."""
    _headers.clear()
    _verified.clear()
