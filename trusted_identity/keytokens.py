"""Public-key tokens: ES256, EdDSA and RS256 JSON Web Tokens verified with a platform's
public keys (CONTRACT section 10).

Plain Python with no Django import; ``cryptography`` checks the signatures (PyJWT only
makes tokens, :func:`make_key_token`, and is the oracle of the tests). The form is
that of section 9 with another signature: ``base64url(header) "." base64url(claims)
"." base64url(signature)``. :func:`verify_key_token` answers ``(None, key)`` for a
valid token, else ``(reason, key or None)``:

1. **Shape**: at most ``max_length`` characters, three base64url segments, the last
   86 to 1,366 characters (a 64-byte ES256 or EdDSA signature, up to an 8,192-bit RSA
   one); anything else is ``token_malformed``. An HS256 token (43 characters) is the
   secret's form, ``tokens``' to judge, never this one's.
2. **Header** (``jwtparts.read_header``, remembered per segment): ``alg`` exactly
   ``ES256``, ``EdDSA`` or ``RS256``; ``typ`` and a string ``kid`` allowed; nothing
   else (``none``, ``HS256``, ``crit``, ``jku``, ``jwk``, ``x5u``, ``x5c``...: a token
   never brings or points at its own key). Else ``token_malformed``.
3. **Key** (:meth:`KeySet.pick`): the ``kid`` names one of the platform's keys, or
   there is no ``kid`` and the platform has exactly one key that verifies; else
   ``unknown_key``. A key past its expiry is ``key_expired``. The key's type must be
   the ``alg``'s (an RSA key never checks an ES256 token, nor an EC key an RS256 one:
   ``token_malformed``), and the signature exactly its length: 64 bytes, R || S, for
   ES256 (a DER signature is ``token_malformed``), 64 for EdDSA, the modulus' size
   for RS256 (PKCS #1 v1.5 with SHA-256).
4. **Signature** under that one key; no match is ``no_match``. Nothing of the claims
   is decoded before it matched.
5. **Claims**, exactly as the HS256 form (``jwtparts``): ``token_malformed``,
   ``token_subject_mismatch``, ``token_too_long_lived``, ``token_expired``.

A valid token is remembered (``tokens.TokenMemo``, shared with the HS256 form) with the
:class:`VerifyingKey` that verified it: seen again, it is valid only while that very
key object is in the set it is checked against and not expired, so a key removed or
expired stops its tokens at once (a changed key set is a new set of new objects).

Nothing here raises: every input gives a reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .jwtparts import (
    NO_MATCH,
    TOKEN_EXPIRED,
    TOKEN_MALFORMED,
    TOKEN_SUBJECT_MISMATCH,
    TOKEN_TOO_LONG_LIVED,
    b64decode,
    check_claims,
    parse_claims,
    read_header,
)
from .publickeys import ALGORITHMS, ES256, RS256, PublicKey
from .tokens import DEFAULT_MAX_LENGTH, TokenMemo

logger = logging.getLogger("trusted_identity")

UNKNOWN_KEY = "unknown_key"
KEY_EXPIRED = "key_expired"
#: Every reason a public-key token can be refused for: section 9's and the two of keys.
REASONS = (
    NO_MATCH,
    TOKEN_MALFORMED,
    TOKEN_SUBJECT_MISMATCH,
    TOKEN_TOO_LONG_LIVED,
    TOKEN_EXPIRED,
    UNKNOWN_KEY,
    KEY_EXPIRED,
)

#: A signature segment of 64 bytes (86 characters) up to 1,024 (1,366: RSA 8,192 bits).
_SHAPE = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{86,1366})")
_HEADERS_MAX = 256
_ES256 = ec.ECDSA(hashes.SHA256())
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class VerifyingKey:
    """One public key as verification holds it: its row (``key_id``, None for a key that
    is not stored here), ``kid``, algorithm, expiry (Unix time) and the signature length
    its algorithm and size give. No ``__eq__``: compared by identity, as the memo
    needs."""

    __slots__ = ("alg", "expires_at", "key", "key_id", "kid", "signature_length")

    def __init__(
        self, public: PublicKey, kid: str, key_id: int | None, expires_at: float | None
    ) -> None:
        self.alg = public.alg
        self.key = public.key
        self.kid = kid
        self.key_id = key_id
        self.expires_at = expires_at
        self.signature_length = (public.key.key_size + 7) // 8 if public.alg == RS256 else 64

    def __repr__(self) -> str:
        return f"<VerifyingKey {self.alg} kid={self.kid!r}>"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` (JWS's form for the algorithm) signs ``message``."""
        try:
            if self.alg == ES256:
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                self.key.verify(encode_dss_signature(r, s), message, _ES256)
            elif self.alg == RS256:
                self.key.verify(signature, message, _PKCS1, _SHA256)
            else:
                self.key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class KeySet:
    """A platform's public keys by ``kid``, made once per set (the runtime's memo);
    ``first_expiry`` is the earliest expiry of any (infinity when none expires)."""

    __slots__ = ("by_kid", "first_expiry", "keys")

    def __init__(self, keys: Sequence[VerifyingKey]) -> None:
        self.keys = tuple(keys)
        self.by_kid = {key.kid: key for key in self.keys}
        self.first_expiry = min(
            (k.expires_at for k in self.keys if k.expires_at is not None), default=float("inf")
        )

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return any(key is mine for mine in self.keys)

    def named(self, kid: str | None, now: float) -> VerifyingKey | None:
        """The key a token's ``kid`` names, expired or not; None for none.

        Without a ``kid``: the one key that has not expired, if exactly one has not;
        with none left, the only key there is; else none.
        """
        if kid is not None:
            return self.by_kid.get(kid)
        if len(self.keys) == 1:
            return self.keys[0]
        live = [k for k in self.keys if not k.expired(now)]
        return live[0] if len(live) == 1 else None

    def pick(self, kid: str | None, now: float) -> VerifyingKey | str:
        """The key a token's ``kid`` names (:meth:`named`), or :data:`UNKNOWN_KEY` /
        :data:`KEY_EXPIRED`."""
        key = self.named(kid, now)
        if key is None:
            return UNKNOWN_KEY
        return KEY_EXPIRED if key.expired(now) else key


#: A key set with no key (immutable).
NO_KEYS = KeySet(())
_MALFORMED: tuple[str, None] = (TOKEN_MALFORMED, None)
_NOT_READ = object()


def _header(segment: str, memo: TokenMemo) -> tuple[str, str | None] | None:
    """``(alg, kid)`` of an acceptable header segment, else None; remembered."""
    known = memo.key_headers.get(segment, _NOT_READ)
    if known is not _NOT_READ:
        return known  # type: ignore[return-value]
    header = read_header(segment)
    found = None
    if header is not None and header.get("alg") in ALGORITHMS:
        found = (header["alg"], header.get("kid"))
    if len(memo.key_headers) >= _HEADERS_MAX:
        memo.key_headers.clear()
    memo.key_headers[segment] = found
    return found


def verify_key_token(
    keys: KeySet,
    user_id: str,
    token: str,
    *,
    now: float,
    leeway: float,
    max_age: float,
    max_length: int = DEFAULT_MAX_LENGTH,
    memo: TokenMemo | None = None,
) -> tuple[str | None, VerifyingKey | None]:
    """``(None, key)`` when ``token`` is a valid public-key token for ``user_id`` under
    one of ``keys`` at ``now``; else ``(reason, key)`` (``key`` the one its ``kid``
    picked, once the signature matched or the key expired) or ``(reason, None)``. Never
    raises."""
    if memo is None:
        memo = TokenMemo()
    try:
        known = memo.verified.get(token)
        key = memo.verified_by.get(token) if known is not None else None
        if key is not None and key in keys:
            if key.expired(now):  # type: ignore[attr-defined]
                return KEY_EXPIRED, key
            return check_claims(known, user_id, now, leeway, max_age), key  # type: ignore[return-value,arg-type]
        shape = _SHAPE.fullmatch(token) if len(token) <= max_length else None
        if shape is None:
            return _MALFORMED
        header = _header(shape[1], memo)
        if header is None:
            return _MALFORMED
        alg, kid = header
        picked = keys.pick(kid, now)
        if isinstance(picked, str):  # an expired key is named, for the tester to say which
            return picked, (keys.named(kid, now) if picked == KEY_EXPIRED else None)
        key = picked
        if key.alg != alg:  # an RSA key for an ES256 header, an EC key for RS256...
            return _MALFORMED
        ascii_token = token.encode("ascii")  # the shape allows nothing else
        signature = b64decode(ascii_token[shape.start(3) :])
        if signature is None or len(signature) != key.signature_length:
            return _MALFORMED  # not canonical, or the wrong length (an ES256 DER signature)
        if not key.verify(signature, ascii_token[: shape.end(2)]):
            return NO_MATCH, None
        claims = parse_claims(ascii_token[shape.start(2) : shape.end(2)])
        if claims is None:
            return TOKEN_MALFORMED, key
        reason = check_claims(claims, user_id, now, leeway, max_age)
        if reason is not None:
            return reason, key
        memo.remember(token, key, claims)
        return None, key
    except Exception as exc:  # no input may escape as an error; the reason says enough
        logger.error(
            "Trusted Identity public-key token verification failed (%s)", type(exc).__name__
        )
        return _MALFORMED


def make_key_token(
    private_key: object, alg: str, user_id: str, issued_at: int, expires_at: int, kid: str | None
) -> str:
    """A public-key token for ``user_id``, as PyJWT makes it (``kid`` in the header when
    given): for the producers and the tests."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(
        {"sub": user_id, "iat": issued_at, "exp": expires_at},
        private_key,  # type: ignore[arg-type]
        algorithm=alg,
        headers=headers,
    )
