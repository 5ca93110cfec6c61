"""The expiring signature form: HS256 JSON Web Tokens in ``signed`` (CONTRACT section 9).

Plain Python with no Django import; PyJWT (which makes the tokens) is the one library
it uses. A token is ``base64url(header) "." base64url(claims) "."
base64url(HMAC-SHA256(key, first two parts))``, keyed with the UTF-8 bytes of the
platform secret: what PyJWT's ``jwt.encode(..., algorithm="HS256")``, Node's
``jsonwebtoken`` and the README's
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
   claims is decoded before the signature matched. The key that matched must be one
   PyJWT's HS256 accepts as an HMAC secret (not a PEM, SSH or JWK key: checked once
   per key), else ``token_malformed``.
4. **Claims**: a JSON object with ``sub`` (a string), ``exp`` and ``iat`` (numbers,
   ``exp`` after ``iat``); ``nbf`` a number and ``jti`` a string if present; no
   ``aud`` (a token made for an audience was not made for this check); else
   ``token_malformed``. Then ``sub`` must equal the user id exactly
   (``token_subject_mismatch``), ``exp - iat`` must be at most ``max_age``
   (``token_too_long_lived``), ``exp`` after ``now - leeway`` and ``iat``/``nbf``
   not after ``now + leeway`` (``token_expired``: outside its validity window,
   which is also what a signing server's clock off by more than the leeway gives).

This hand check is the verifier: it is stricter than PyJWT's ``jwt.decode`` (canonical
base64url only, no ``crit``/``jku``/``jwk``/``x5u``/``x5c``/``b64`` header, no
``NaN`` or ``Infinity``, the members' types) and costs a tenth of it, which matters on
the hot path of session start (``make bench``, ``token_first_verify_ratio``). PyJWT,
the maintained library, makes the tokens (:func:`make_token`) and is the oracle the
tests hold this check to: every token accepted here is one ``jwt.decode`` accepts with
the same key and subject (``tests/test_fuzz_tokens.py``, ``tests/test_tokens.py``). A
valid token's claims are remembered per token and key (bounded): a token presented
again repeats only the key, subject, lifetime and time checks.

:func:`verify_token_match` also names the key the signature matched (which secret
verified a start); :func:`match_index` compares only the signature, under keys that
never verify, to say why a token matched none of those that do (``other_platform``,
``expired_secret``).

Nothing here raises: every input gives ``None`` or a reason.
"""

from __future__ import annotations

import binascii
import hmac
import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

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

_SHAPE = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})")
_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})

_HEADERS_MAX = 256


#: What the checks need of a token's claims: ``(sub, iat, exp, nbf)``, ``nbf`` None when
#: absent. A plain tuple: a NamedTuple costs a tenth of the first sight's budget to build.
Claims = tuple[str, "int | float", "int | float", "int | float | None"]

_VERIFIED_MAX = 4096
_VERIFIED_MAX_LENGTH = 1024  # longer tokens are verified every time, never remembered


class TokenMemo:
    """What verification remembers between tokens, bounded: checked header segments
    (few distinct ones in practice), valid tokens with the key that matched and their
    claims, and the keys PyJWT was asked about. The process's one is owned by
    ``trusted_identity.runtime`` and passed in; without one nothing is remembered."""

    __slots__ = ("headers", "keys_checked", "verified")

    def __init__(self) -> None:
        self.headers: dict[str, bool] = {}
        self.verified: dict[str, tuple[HmacKey, Claims]] = {}
        self.keys_checked: dict[bytes, bool] = {}

    def clear(self) -> None:
        """Forget it all (keys changed, tests)."""
        self.headers.clear()
        self.verified.clear()
        self.keys_checked.clear()

    def __len__(self) -> int:
        return len(self.headers) + len(self.verified) + len(self.keys_checked)


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
    memo: TokenMemo | None = None,
) -> str | None:
    """``None`` if ``token`` is valid for ``user_id`` under one of ``keys`` at ``now``, else
    the reason (one of :data:`REASONS`). Never raises."""
    return verify_token_match(
        keys,
        user_id,
        token,
        now=now,
        leeway=leeway,
        max_age=max_age,
        max_length=max_length,
        memo=memo,
    )[0]


_MALFORMED: tuple[str, None] = (TOKEN_MALFORMED, None)
_NO_MATCH: tuple[str, None] = (NO_MATCH, None)


def verify_token_match(
    keys: Sequence[HmacKey],
    user_id: str,
    token: str,
    now: float,
    leeway: float,
    max_age: float,
    max_length: int = DEFAULT_MAX_LENGTH,
    memo: TokenMemo | None = None,
) -> tuple[str | None, HmacKey | None]:
    """As :func:`verify_token`, with the key of ``keys`` the token's signature matched:
    ``(None, key)`` when valid, ``(reason, key)`` when the signature matched but the
    claims did not pass, ``(reason, None)`` when no key matched. Never raises.
    ``memo`` remembers checked headers and verdicts across calls. Positional arguments
    are accepted (session start passes them so: keywords cost a first sight 2%)."""
    if memo is None:
        memo = TokenMemo()
    headers, verified = memo.headers, memo.verified
    try:  # one function, no inner call: the hot path of session start with a token
        known = verified.get(token)
        if known is not None and known[0] in keys:  # HmacKey has no __eq__: identity
            return _check_claims(known[1], user_id, now, leeway, max_age), known[0]
        shape = _SHAPE.fullmatch(token) if len(token) <= max_length else None
        if shape is None:
            return _MALFORMED
        header_end = shape.end(1)
        header = token[:header_end]
        header_ok = headers.get(header)
        if header_ok is None:
            header_ok = _header_is_acceptable(header)
            if len(headers) >= _HEADERS_MAX:
                headers.clear()
            headers[header] = header_ok
        if not header_ok:
            return _MALFORMED
        if token[-1] not in _CANONICAL_LAST:  # the signature's 2 unused bits must be zero
            return _MALFORMED
        ascii_token = token.encode("ascii")  # the shape allows nothing else
        message = ascii_token[:-44]  # the signature segment is 43 characters after a dot
        signature = binascii.a2b_base64(ascii_token[-43:].translate(_URL_TO_STANDARD) + b"=")
        matched = None
        for key in keys:  # every key, whatever the earlier ones gave
            if hmac.compare_digest(key.digest(message), signature) and matched is None:
                matched = key
        if matched is None:
            return _NO_MATCH
        checked = memo.keys_checked
        if not checked.get(matched.secret_bytes) and not _hmac_key_acceptable(matched, checked):
            return TOKEN_MALFORMED, matched
        claims = _parse_claims(ascii_token[header_end + 1 : -44])
        if claims is None:
            return TOKEN_MALFORMED, matched
        sub, iat, exp, nbf = claims  # _check_claims, inline
        if sub != user_id:
            return TOKEN_SUBJECT_MISMATCH, matched
        if exp - iat > max_age:
            return TOKEN_TOO_LONG_LIVED, matched
        if exp <= now - leeway or iat > now + leeway or (nbf is not None and nbf > now + leeway):
            return TOKEN_EXPIRED, matched
        if len(token) <= _VERIFIED_MAX_LENGTH:
            if len(verified) >= _VERIFIED_MAX:
                verified.clear()
            verified[token] = (matched, claims)
        return None, matched
    except Exception as exc:  # no input may escape as an error; the reason says enough
        logger.error("Trusted Identity token verification failed (%s)", type(exc).__name__)
        return _MALFORMED


def match_index(keys: Sequence[HmacKey], token: str, max_length: int = DEFAULT_MAX_LENGTH) -> int:
    """The index in ``keys`` of the first key ``token``'s signature matches, or -1.

    Only the signature (HMAC of the first two segments) is compared, under every key,
    in constant time and without stopping at a match; nothing is decoded. For the
    diagnosis of a token that matched none of the still-valid keys. Never raises.
    """
    try:
        if len(token) > max_length or _SHAPE.fullmatch(token) is None:
            return -1
        if token[-1] not in _CANONICAL_LAST:
            return -1
        ascii_token = token.encode("ascii")
        message = ascii_token[:-44]
        signature = binascii.a2b_base64(ascii_token[-43:].translate(_URL_TO_STANDARD) + b"=")
    except (ValueError, binascii.Error):
        return -1
    found = -1
    for index, key in enumerate(keys):  # every key, whatever the earlier ones gave
        if hmac.compare_digest(key.digest(message), signature) and found < 0:
            found = index
    return found


#: PyJWT's HS256, for its check of the key: one that looks like a public key, a
#: certificate or a JWK is not an HMAC secret (the key confusion from the other side).
_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)


def _hmac_key_acceptable(key: HmacKey, checked: dict[bytes, bool]) -> bool:
    """Whether PyJWT accepts ``key`` as an HMAC secret; remembered in ``checked``."""
    acceptable = checked.get(key.secret_bytes)
    if acceptable is None:
        try:
            _HS256.prepare_key(key.secret_bytes)
            acceptable = True
        except jwt.PyJWTError:
            logger.warning("A token matched a key that PyJWT refuses as an HMAC secret")
            acceptable = False
        if len(checked) >= _HEADERS_MAX:
            checked.clear()
        checked[key.secret_bytes] = acceptable
    return acceptable


def _check_claims(
    claims: Claims, user_id: str, now: float, leeway: float, max_age: float
) -> str | None:
    """The claims against the user id, the lifetime and the clock (a remembered token;
    a first sight runs the same checks inline)."""
    sub, iat, exp, nbf = claims
    if sub != user_id:
        return TOKEN_SUBJECT_MISMATCH
    if exp - iat > max_age:
        return TOKEN_TOO_LONG_LIVED
    if exp <= now - leeway or iat > now + leeway or (nbf is not None and nbf > now + leeway):
        return TOKEN_EXPIRED
    return None


#: The last of 43 base64url characters carries 2 unused bits, which must be zero.
_CANONICAL_LAST = frozenset("AEIMQUYcgkosw048")
_URL_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
#: The last character of a segment whose length is 2 or 3 modulo 4 carries 4 or 2 unused
#: bits; the canonical spelling has them zero (the length modulo 4 is never 1).
_CANONICAL_LAST_OF = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048"), 0: None}
_PADDING = {0: b"", 2: b"==", 3: b"="}


def _b64decode(segment: bytes) -> bytes | None:
    """The bytes of an unpadded base64url segment (the shape was checked: only base64url
    characters), or None unless it is the canonical encoding of those bytes."""
    remainder = len(segment) % 4
    if remainder == 1:
        return None
    canonical = _CANONICAL_LAST_OF[remainder]
    if canonical is not None and segment[-1] not in canonical:
        return None  # unused trailing bits set: another spelling of the same bytes
    return binascii.a2b_base64(segment.translate(_URL_TO_STANDARD) + _PADDING[remainder])


def _text(segment: bytes) -> str | None:
    """The UTF-8 text of a base64url segment, or None (not canonical base64url, not UTF-8)."""
    raw = _b64decode(segment)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_object(text: str | None) -> dict[str, Any] | None:
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


def _header_is_acceptable(segment: str) -> bool:
    header = _json_object(_text(segment.encode("ascii")))
    if header is None or header.get("alg") != ALGORITHM or not header.keys() <= _HEADER_MEMBERS:
        return False
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        return False
    return isinstance(header.get("kid", ""), str)


def _is_number(value: Any) -> bool:
    kind = type(value)  # exactly int or float: not bool, not a subclass
    return kind is int or (kind is float and math.isfinite(value))


#: The claims exactly as PyJWT, ``jsonwebtoken`` and the README's snippets write them: a
#: subject with no escape or control character (so the text between the quotes is the
#: string), then ``iat`` and ``exp`` as plain integers. What ``json.loads`` gives for
#: such a text is exactly its three groups, so it is read without the JSON decoder
#: (a fifth of a first verification); any other text goes through the decoder.
#: Matched on the decoded bytes: UTF-8 puts no byte below 0x80 inside a multi-byte
#: character, so excluding ``"``, ``\`` and the control bytes excludes exactly those
#: characters, and only the subject needs decoding.
_PLAIN_CLAIMS = re.compile(
    rb'\{"sub":"([^"\\\x00-\x1f]*)","iat":(0|[1-9][0-9]{0,15}),"exp":(0|[1-9][0-9]{0,15})\}'
)


def _parse_claims(segment: bytes) -> Claims | None:
    remainder = len(segment) % 4  # _b64decode, inline: a first sight's largest step
    if remainder == 1:
        return None
    canonical = _CANONICAL_LAST_OF[remainder]
    if canonical is not None and segment[-1] not in canonical:
        return None
    raw = binascii.a2b_base64(segment.translate(_URL_TO_STANDARD) + _PADDING[remainder])
    plain = _PLAIN_CLAIMS.fullmatch(raw)
    if plain is not None:
        sub, iat, exp = plain.groups()
        try:
            sub = sub.decode("utf-8")
        except UnicodeDecodeError:
            return None
        iat, exp = int(iat), int(exp)
        return (sub, iat, exp, None) if exp > iat else None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    claims = _json_object(text)
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


def make_token(key: HmacKey, user_id: str, issued_at: int, expires_at: int) -> str:
    """An HS256 token for ``user_id``, valid from ``issued_at`` to ``expires_at`` (Unix times)."""
    return jwt.encode(
        {"sub": user_id, "iat": issued_at, "exp": expires_at},
        key.secret_bytes,
        algorithm=ALGORITHM,
    )
