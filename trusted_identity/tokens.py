"""The expiring signature form: HS256 JSON Web Tokens in ``signed`` (CONTRACT section 9).

Plain Python with no Django import; PyJWT (which makes the tokens) is the one library
it uses. A token is ``base64url(header) "." base64url(claims) "."
base64url(HMAC-SHA256(key, first two parts))``, keyed with the UTF-8 bytes of the
platform secret: what PyJWT's ``jwt.encode(..., algorithm="HS256")``, Node's
``jsonwebtoken`` and the documentation's
plain-``crypto`` snippet all make.

:func:`verify_token` answers ``None`` for a valid token, else the reason:

1. **Shape, before anything is decoded**: at most ``max_length`` characters, three
   base64url segments without padding, the last one 43 characters (32 bytes) in its
   one canonical spelling (the last character's 2 unused bits zero). Anything else is
   ``token_malformed``.
2. **Header**: a JSON object whose ``alg`` is exactly ``HS256``, with no member but
   ``alg``, ``typ`` (``JWT``) and ``kid`` (ignored: every still-valid secret is
   tried, so nothing in a token picks its key). ``none``, every other algorithm,
   ``crit``, ``jku``, ``jwk``, ``x5u``, ``x5c`` and ``b64`` are ``token_malformed``.
   Checked headers are remembered (signers send one or two distinct ones); the one
   accepted last is recognised by its segment and dot, without a lookup.
3. **Signature**: the HMAC of the first two segments under every still-valid key,
   each compared in constant time with the signature (both in base64's one canonical
   spelling), never stopping at the first match, as the plain form does. No match is
   ``no_match``. Nothing of the claims is decoded before the signature matched. The
   key that matched must be one PyJWT's HS256 accepts as an HMAC secret (not a PEM,
   SSH or JWK key: checked once per key), else ``token_malformed``.
4. **Claims**: a JSON object with ``sub`` (a string), ``exp`` and ``iat`` (numbers,
   ``exp`` after ``iat``); ``nbf`` a number and ``jti`` a string if present; no
   ``aud`` (a token made for an audience was not made for this check); else
   ``token_malformed``. Then ``sub`` must equal the user id exactly
   (``token_subject_mismatch``), ``exp - iat`` must be at most ``max_age``
   (``token_too_long_lived``), ``exp`` after ``now - leeway`` and ``iat``/``nbf``
   not after ``now + leeway`` (``token_expired``: outside its validity window,
   which is also what a signing server's clock off by more than the leeway gives).
   The header's members, the claims and these checks are ``jwtparts``', shared with
   the public-key form (``keytokens``), so the two forms can't drift apart.

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

import hmac
import logging
from binascii import a2b_base64, b2a_base64
from collections.abc import Sequence

import jwt
from jwt.algorithms import HMACAlgorithm

from .jwtparts import (
    CANONICAL_DECODING,
    NO_MATCH,
    REASONS,
    TOKEN_EXPIRED,
    TOKEN_MALFORMED,
    TOKEN_SUBJECT_MISMATCH,
    TOKEN_TOO_LONG_LIVED,
    URL_TO_STANDARD,
    Claims,
    check_claims,
    parse_standard_claims,
    read_header,
)
from .signing import HmacKey

logger = logging.getLogger("trusted_identity")

ALGORITHM = "HS256"
#: The longest token accepted unless the caller says otherwise (docs/signing.md).
DEFAULT_MAX_LENGTH = 4096

#: The reasons, the header and the claims are those of ``jwtparts`` (shared with the
#: public-key form, ``keytokens``); re-exported here for the HS256 form's callers.
__all__ = [
    "NO_MATCH",
    "REASONS",
    "TOKEN_EXPIRED",
    "TOKEN_MALFORMED",
    "TOKEN_SUBJECT_MISMATCH",
    "TOKEN_TOO_LONG_LIVED",
    "Claims",
    "TokenMemo",
    "looks_like_token",
    "make_token",
    "match_index",
    "verify_token",
    "verify_token_match",
]


#: The last characters a 43-character signature segment (32 bytes: its last character
#: carries 2 unused bits, zero in the one canonical spelling) may end with.
_SIGNATURE_ENDINGS = CANONICAL_DECODING[43 % 4][0]
_SHORTEST = 1 + 1 + 1 + 1 + 43  # header, dot, claims, dot, signature
_DOT = b"."[0]  # the byte, as indexing bytes gives it


def _shaped_segments(ascii_token: bytes) -> list[bytes] | None:
    """``ascii_token``'s three segments in the standard base64 alphabet if it has a
    token's shape, else None: three base64url segments without padding, none empty, the
    last one 43 characters in its one canonical spelling. The translation the claims and
    the signature need anyway is the check: it turns every byte outside base64url into
    a dot, so one split finds both the segments and anything that does not belong. The
    two bytes the split cut at must then be dots in the token itself: a ``+`` or a space
    standing for one is no token, however it is signed."""
    if len(ascii_token) < _SHORTEST:
        return None
    segments = ascii_token.translate(URL_TO_STANDARD).split(b".")
    if len(segments) == 3:
        header, claims, signature = segments
        if (
            header
            and claims
            and len(signature) == 43
            and signature[-1] in _SIGNATURE_ENDINGS
            and ascii_token[len(header)] == _DOT
            and ascii_token[-44] == _DOT
        ):
            return segments
    return None


_HEADERS_MAX = 256


_NO_HEADER = "\n"  # no token starts with it: the shape allows no newline
_VERIFIED_MAX = 4096
_VERIFIED_MAX_LENGTH = 1024  # longer tokens are verified every time, never remembered


class TokenMemo:
    """What verification remembers between tokens, bounded: checked header segments
    (few distinct ones in practice; ``key_headers`` those of the public-key form,
    ``keytokens``), valid tokens of either form with their claims (``verified``) and the
    key that matched (``verified_by``: an ``HmacKey`` or a ``keytokens.VerifyingKey``,
    compared by identity), and the keys PyJWT was asked about. The process's one is
    owned by ``trusted_identity.runtime`` and passed in; without one nothing is
    remembered.

    A remembered token's claims and its key are kept in two dicts, not as one
    ``(key, claims)`` pair: the claims are a tuple of strings and numbers, which the
    garbage collector stops tracking, while a pair holding the key stays tracked. Up to
    4,096 pairs, alive until the memo is full, were promoted through every generation,
    and the collections they caused took 7% to 10% of a first sight (docs/performance.md).
    """

    __slots__ = ("headers", "key_headers", "keys_checked", "last_header", "verified", "verified_by")

    def __init__(self) -> None:
        self.headers: dict[str, bool] = {}
        # The header segment accepted last, with its dot: a token that starts with it has
        # that header (the shape ends the header at its first dot), checked already.
        self.last_header = _NO_HEADER
        self.key_headers: dict[str, tuple[str, str | None] | None] = {}
        self.verified: dict[str, Claims] = {}
        self.verified_by: dict[str, object] = {}  # each written after its claims
        self.keys_checked: dict[bytes, bool] = {}

    def remember(self, token: str, key: object, claims: Claims) -> None:
        """A valid token, with the key that verified it (not one too long to be worth it)."""
        if len(token) <= _VERIFIED_MAX_LENGTH:
            if len(self.verified) >= _VERIFIED_MAX:
                self.verified.clear()
                self.verified_by.clear()
            self.verified[token] = claims
            self.verified_by[token] = key

    def clear(self) -> None:
        """Forget it all (keys changed, tests)."""
        self.last_header = _NO_HEADER
        self.headers.clear()
        self.key_headers.clear()
        self.verified.clear()
        self.verified_by.clear()
        self.keys_checked.clear()

    def __len__(self) -> int:
        return (
            len(self.headers) + len(self.key_headers) + len(self.verified) + len(self.keys_checked)
        )


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
    verified = memo.verified
    try:  # one function, no inner call: the hot path of session start with a token
        known = verified.get(token)
        if known is not None:
            # None when another thread cleared the memo in between: checked in full then
            key = memo.verified_by.get(token)
            if key in keys:  # HmacKey has no __eq__: identity
                return check_claims(known, user_id, now, leeway, max_age), key
        if len(token) > max_length or not token.isascii():
            return _MALFORMED
        ascii_token = token.encode("ascii")
        segments = _shaped_segments(ascii_token)  # for the claims and the signature
        if segments is None:
            return _MALFORMED
        last_header = memo.last_header  # read once: another thread may replace it
        if not token.startswith(last_header):  # not the header accepted last and its dot
            header = token[: len(segments[0])]
            headers = memo.headers
            header_ok = headers.get(header)
            if header_ok is None:
                header_ok = _header_is_acceptable(header)
                if len(headers) >= _HEADERS_MAX:
                    headers.clear()
                headers[header] = header_ok
            if not header_ok:
                return _MALFORMED
            memo.last_header = header + "."
        message = ascii_token[:-44]  # the signature segment is 43 characters after a dot
        # The signature as b2a_base64 spells a digest (canonical: one spelling per digest),
        # compared with each key's so: encoding 32 bytes costs less than decoding 43 characters
        signature = segments[2] + b"=\n"
        matched = None
        for key in keys:  # every key, whatever the earlier ones gave
            if hmac.compare_digest(b2a_base64(key.digest(message)), signature) and matched is None:
                matched = key
        if matched is None:
            return _NO_MATCH
        checked = memo.keys_checked
        if not checked.get(matched.secret_bytes) and not _hmac_key_acceptable(matched, checked):
            return TOKEN_MALFORMED, matched
        claims = parse_standard_claims(segments[1])
        if claims is None:
            return TOKEN_MALFORMED, matched
        sub, iat, exp, nbf = claims  # check_claims, inline: a first sight's hot path
        if sub != user_id:
            return TOKEN_SUBJECT_MISMATCH, matched
        if exp - iat > max_age:
            return TOKEN_TOO_LONG_LIVED, matched
        if exp <= now - leeway or iat > now + leeway or (nbf is not None and nbf > now + leeway):
            return TOKEN_EXPIRED, matched
        if len(token) <= _VERIFIED_MAX_LENGTH:
            if len(verified) >= _VERIFIED_MAX:
                verified.clear()
                memo.verified_by.clear()
            verified[token] = claims  # TokenMemo.remember, inline
            memo.verified_by[token] = matched
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
    if len(token) > max_length or not token.isascii():
        return -1
    ascii_token = token.encode("ascii")
    segments = _shaped_segments(ascii_token)
    if segments is None:
        return -1
    message = ascii_token[:-44]
    # Decoded once, not each key's digest encoded as verify_token_match does: the
    # diagnosis tries every expired and sibling secret, and from two keys on, decoding
    # once costs less than encoding each.
    signature = a2b_base64(segments[2] + b"=")
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


def _header_is_acceptable(segment: str) -> bool:
    header = read_header(segment)
    return header is not None and header.get("alg") == ALGORITHM


def make_token(key: HmacKey, user_id: str, issued_at: int, expires_at: int) -> str:
    """An HS256 token for ``user_id``, valid from ``issued_at`` to ``expires_at`` (Unix times)."""
    return jwt.encode(
        {"sub": user_id, "iat": issued_at, "exp": expires_at},
        key.secret_bytes,
        algorithm=ALGORITHM,
    )
