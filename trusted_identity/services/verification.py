"""Signing a user id with a platform's current secret and verifying ``signed``.

Three forms (CONTRACT sections 1, 9 and 10): the plain HMAC of
``trusted_identity.signing`` and the HS256 tokens of ``trusted_identity.tokens``, both
keyed with the platform's secrets (current, and previous ones inside their grace),
and the public-key tokens of ``trusted_identity.keytokens``, verified with its public
keys. This module picks the keys, applies the platform's policy (``signature_forms``,
its key source) and says precisely what it found (:class:`Verification`); the public
answer stays ``valid`` or ``invalid``. :func:`verify_signed` is the one decision:
session start on both paths and the tester call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import NamedTuple

from .. import runtime
from ..conf import app_settings
from ..dbclock import database_time
from ..exceptions import InvalidRequest, PublicKeysOnly, ServiceUnavailable
from ..keytokens import KEY_EXPIRED, UNKNOWN_KEY, VerifyingKey, verify_key_token
from ..models import KeySource, SecretState
from ..signing import HmacKey, decode_signature, match_index, sign
from ..tokens import TOKEN_MALFORMED, looks_like_token, make_token, verify_token_match
from ..tokens import match_index as token_match_index
from . import jwks
from .access import Actor, authorize
from .audit import audit
from .durations import describe_duration
from .key_tables import DiagnosticKey, diagnostic_keys, key_table, keys_of, public_key_set
from .lookup import PlatformSnapshot, lookup_platform
from .signature_forms import PLAIN, TOKEN
from .spaces import get_platform

#: The clock of verification and signing: Unix time by the database's clock, the one
#: grace ends are written by (``dbclock.database_time``: no query). Tests freeze it by
#: replacing it; while it is that function, ``verify_signed`` reads the same clock
#: through the runtime it holds already (2.5% of a plain check's instructions).
clock = database_time

MALFORMED = "malformed"  # neither 64 hex digits nor a token's three parts
NO_MATCH = "no_match"
OTHER_PLATFORM = "other_platform"  # the current secret of another platform of the space
EXPIRED_SECRET = "expired_secret"  # a secret of this platform whose grace has ended
FORM_NOT_ALLOWED = "form_not_allowed"  # would verify, but the platform refuses its form
#: The form of a token signed with a public key (counted beside plain and token).
PUBLIC_KEY = "public-key"
_SECRET_ONLY = KeySource.SECRET.value


class Verification(NamedTuple):
    """What verifying one ``signed`` found.

    ``form`` is what ``signed`` was (``plain``; ``token`` for three dot-separated
    parts with an HMAC; ``public-key`` for a token with a longer signature, on a
    platform that holds public keys or takes them); ``reason`` is None when valid,
    else ``malformed``, ``no_match``,
    ``other_platform`` (it matches the current secret of another platform of the same
    space), ``expired_secret`` (it matches a secret of this platform whose grace ended
    within ``EXPIRED_SECRET_RETENTION``), ``form_not_allowed`` or a token reason of
    ``trusted_identity.tokens`` (``token_malformed``, ``token_expired``,
    ``token_subject_mismatch``, ``token_too_long_lived``; for the public-key form
    also ``unknown_key`` and ``key_expired``). ``secret_id`` is the ``PlatformSecret``
    row whose key verified a valid ``signed``, ``key_id`` the ``PublicKey`` row, else
    None. For the counts of forms, reasons, secrets and keys; never in the public answer.
    """

    valid: bool
    form: str
    reason: str | None = None
    secret_id: int | None = None
    key_id: int | None = None


_PLAIN_REFUSED = Verification(False, PLAIN, FORM_NOT_ALLOWED)
_TOKEN_REFUSED = Verification(False, TOKEN, FORM_NOT_ALLOWED)
_RESULTS = {
    (form, reason): Verification(False, form, reason)
    for form in (PLAIN, TOKEN, PUBLIC_KEY)
    for reason in (
        UNKNOWN_KEY,
        KEY_EXPIRED,
        MALFORMED,
        NO_MATCH,
        OTHER_PLATFORM,
        EXPIRED_SECRET,
        FORM_NOT_ALLOWED,
        "token_malformed",
        "token_expired",
        "token_subject_mismatch",
        "token_too_long_lived",
    )
}
#: The valid results, one per form and secret row, made once: a valid start allocates none.
_VALID: dict[str, dict[int | None, Verification]] = {PLAIN: {}, TOKEN: {}, PUBLIC_KEY: {}}
_VALID_MAX = 4096


def _valid(form: str, row: int | None) -> Verification:
    """Valid in ``form``, verified by the secret row (or, for ``public-key``, key row)."""
    made = _VALID[form]
    result = made.get(row)
    if result is None:
        if len(made) >= _VALID_MAX:
            made.clear()
        if form == PUBLIC_KEY:
            result = Verification(True, form, None, None, row)
        else:
            result = Verification(True, form, None, row)
        made[row] = result
    return result


def _signature_match(keys: Sequence[HmacKey], user_id: str, signed: str) -> int:
    """The index of the first of ``keys`` whose HMAC ``signed`` carries, or -1: only the
    signature is compared (a token's claims are not read), under every key, in constant
    time. A token's is over its first two segments, a plain one's over ``user_id``."""
    if looks_like_token(signed):
        return token_match_index(keys, signed, max_length=app_settings.MAX_TOKEN_LENGTH)
    return match_index(keys, user_id, signed)


def diagnostic_match(
    snapshot: PlatformSnapshot, user_id: str, signed: str, now: float
) -> DiagnosticKey | None:
    """The secret that never verifies whose key ``signed`` was made with: an expired secret
    of this platform or the current one of another platform of its space
    (``key_tables.diagnostic_keys``), or None. One HMAC per diagnostic secret, each compared
    in constant time, whatever the text.

    The one refinement of a signature that matched no secret still verifying: session
    start names its reason by it (:func:`diagnose`), the tester the secret.
    """
    keys, found = diagnostic_keys(snapshot, now)
    if not keys:
        return None
    index = _signature_match(keys, user_id, signed)
    return None if index < 0 else found[index]


def diagnose(snapshot: PlatformSnapshot, user_id: str, signed: str, now: float) -> str:
    """Why a signature that matched no secret still verifying did not: ``expired_secret``,
    ``other_platform`` or ``no_match`` (:func:`diagnostic_match`)."""
    found = diagnostic_match(snapshot, user_id, signed, now)
    if found is None:
        return NO_MATCH
    return EXPIRED_SECRET if found.kind is None else OTHER_PLATFORM


def verify_signed(
    snapshot: PlatformSnapshot, user_id: str, signed: str, now: float | None = None
) -> Verification:
    """Verify ``signed`` (any form) for ``user_id``: the plain form and HS256 tokens under
    every still-valid secret, a public-key token (a longer signature, on a platform that
    holds public keys or takes them) under the public key its ``kid`` names.

    The hot path of session start: grace ends are compared as Unix times and keys
    come from the per-process decryption memo, so a warm plain check costs about
    what a hand-written ``hmac`` check does (``make bench``, ``verify_ratio``). A form
    the platform's policy refuses is invalid, with the reason ``form_not_allowed``
    when it would otherwise have verified. A signature that matches none of them is
    tried under the diagnostic secrets (expired ones, the space's other platforms'),
    only to name its reason: a few more HMACs for an invalid start, none for a valid one.
    """
    current = runtime.current()  # read once: the key table and the token memo are its
    if now is None:  # database_time's body with the runtime in hand: two calls fewer
        now = current.generation.now() if clock is database_time else clock()
    prepared = snapshot.prepared  # key_table's every-start case, inline: one call fewer
    table = prepared.keys
    if table is None or prepared.ring is not current.key_ring.value:
        table = key_table(snapshot, current)
    if now < table.first_expiry:  # no grace has ended since the lookup: the keys as made
        keys, ids = table.keys, table.ids
    else:
        keys, ids = table.live(now)
    if "." in signed:  # maybe a token: two dots (a plain signature has none)
        if snapshot.takes_public_keys and len(signed) - signed.rindex(".") != 44:
            # _public_key_shaped, inline: longer than an HMAC's signature, on a platform
            # that takes public keys (the check of a token with a public key)
            if looks_like_token(signed):
                return _check_key_token(snapshot, user_id, signed, now)[0]
        else:
            settings = app_settings
            reason, key = verify_token_match(  # positional: the hot path of a token's start
                keys,
                user_id,
                signed,
                now,
                settings.TOKEN_LEEWAY,
                snapshot.token_max_age,
                settings.MAX_TOKEN_LENGTH,
                current.tokens,
            )
            if reason is None:
                if snapshot.signature_form == PLAIN:
                    return _TOKEN_REFUSED
                secret_id = table.id_of[key]
                return _VALID[TOKEN].get(secret_id) or _valid(TOKEN, secret_id)
            # A text without a token's two dots is malformed as a token (the shape check
            # wants them); only then are they counted, to judge it as the plain form below.
            if reason != TOKEN_MALFORMED or looks_like_token(signed):
                if reason == NO_MATCH:
                    reason = diagnose(snapshot, user_id, signed, now)
                return _RESULTS.get((TOKEN, reason)) or Verification(False, TOKEN, reason)
    # The plain form, and any text that is not a token (looks_like_token is false): the
    # seed's cost (one comparison per still-valid secret, whatever the text).
    index = match_index(keys, user_id, signed)
    if index >= 0:
        return _valid(PLAIN, ids[index]) if snapshot.signature_form != TOKEN else _PLAIN_REFUSED
    # Every invalid text pays the diagnosis, a malformed one too (against 32 zero
    # bytes, as above): its cost depends on nothing but the platform's secrets.
    reason = diagnose(snapshot, user_id, signed, now)
    return _RESULTS[PLAIN, MALFORMED if decode_signature(signed) is None else reason]


def _hmac_shaped(token: str) -> bool:
    """Whether a token's signature segment is an HMAC's (43 characters): the secret's
    form; a longer one is a public key's (``keytokens``: 86 or more)."""
    return len(token) - token.rindex(".") == 44


def _public_key_shaped(snapshot: PlatformSnapshot, token: str) -> bool:
    """Whether a token is judged as a public-key token: a signature longer than an
    HMAC's, on a platform that holds public keys (stored or from its JWKS URL) or takes
    them."""
    return snapshot.takes_public_keys and not _hmac_shaped(token)


def _check_key_token(
    snapshot: PlatformSnapshot, user_id: str, signed: str, now: float, again: bool = True
) -> tuple[Verification, VerifyingKey | None]:
    """A public-key token under the platform's public keys (``key_tables.public_key_set``:
    the stored ones and its JWKS URL's; on an unknown ``kid`` that set is fetched again,
    once a minute at most, and the token checked ``again`` under the new one: ``jwks``),
    and the key its ``kid`` named (the tester says which).

    Valid only where the key source takes public keys (``both``, ``public-key``); on a
    ``secret`` platform a token its keys verify is ``form_not_allowed``, as a form the
    policy refuses is. Nothing is tried under the secrets or the diagnostic ones: an
    HMAC can't make a public key's signature.
    """
    reason, key = verify_key_token(
        public_key_set(snapshot),
        user_id,
        signed,
        now=now,
        leeway=app_settings.TOKEN_LEEWAY,
        max_age=snapshot.token_max_age,
        max_length=app_settings.MAX_TOKEN_LENGTH,
        memo=runtime.current().tokens,
    )
    if snapshot.jwks is not None and again:
        fresh = jwks.after_verification(snapshot, reason)
        if fresh is not None:
            return _check_key_token(fresh, user_id, signed, now, again=False)
    if reason is None and key is not None:
        if snapshot.key_source == _SECRET_ONLY:
            return _RESULTS[PUBLIC_KEY, FORM_NOT_ALLOWED], key
        return _valid(PUBLIC_KEY, key.key_id), key
    refused = _RESULTS.get((PUBLIC_KEY, reason or NO_MATCH))
    return refused or Verification(False, PUBLIC_KEY, reason), key


class MatchedSecret(NamedTuple):
    """The secret whose key a signature was made with, whether or not a start accepts it.

    ``state`` is ``current`` or ``previous`` (a secret that verifies; the start may still
    refuse the signature for its form or a token's claims), ``expired`` (kept after its
    grace) or ``other_platform`` (the current secret of another platform of the space).
    ``grace_end`` (Unix time) is a previous secret's end of grace, or an expired one's;
    ``other_kind`` the other platform's kind.
    """

    secret_id: int
    state: str
    grace_end: float | None = None
    other_kind: str | None = None


class Explanation(NamedTuple):
    """What verification decided about one ``signed`` (exactly what a session start at
    the same moment counts) and the secret its signature matched, if any; for a
    public-key token, the public key that verified it (or that its ``kid`` names, expired,
    or whose signature it carries while its claims or the policy refuse it)."""

    verification: Verification
    secret: MatchedSecret | None
    key: VerifyingKey | None = None


def explain_signed(
    snapshot: PlatformSnapshot, user_id: str, signed: str, now: float | None = None
) -> Explanation:
    """:func:`verify_signed`'s verdict on ``signed`` with the secret it was made with: for
    the signature tester, never for session start (which tells no one which secret).

    A valid signature's secret is the one that verified it. Otherwise the signature is
    compared with the secrets that verify (a refused form or token claims leave the
    match standing), then with the diagnostic ones through :func:`diagnostic_match`,
    the refinement session start itself uses. A few HMACs more than verification.
    A public-key token names the key instead, from the one check session start makes.
    """
    if now is None:
        now = clock()
    if "." in signed and looks_like_token(signed) and _public_key_shaped(snapshot, signed):
        verification, key = _check_key_token(snapshot, user_id, signed, now)
        return Explanation(verification, None, key)
    verification = verify_signed(snapshot, user_id, signed, now)
    if verification.secret_id is not None:
        return Explanation(verification, _matched(snapshot, verification.secret_id))
    return Explanation(verification, matching_secret(snapshot, user_id, signed, now))


def matching_secret(
    snapshot: PlatformSnapshot, user_id: str, signed: str, now: float
) -> MatchedSecret | None:
    """The secret ``signed`` was made with for ``user_id``, whether or not a start would
    accept it: those that verify, then the diagnostic ones (:func:`diagnostic_match`),
    each tried once. For the tester (:func:`explain_signed`, and the id variants it
    tries when the id as given matches nothing), never for session start."""
    keys, ids = key_table(snapshot).live(now)
    index = _signature_match(keys, user_id, signed)
    if index >= 0:
        return _matched(snapshot, ids[index])
    found = diagnostic_match(snapshot, user_id, signed, now)
    if found is None:
        return None
    if found.kind is None:
        return MatchedSecret(found.secret_id, SecretState.EXPIRED, found.expires_at)
    return MatchedSecret(found.secret_id, OTHER_PLATFORM, None, found.kind)


def _matched(snapshot: PlatformSnapshot, secret_id: int) -> MatchedSecret:
    """A secret that verifies, as the tester names it: current, or previous until when."""
    table = key_table(snapshot)
    grace_end = dict(zip(table.ids, (end for _, end in table.entries), strict=True))[secret_id]
    state = SecretState.CURRENT if grace_end is None else SecretState.PREVIOUS
    return MatchedSecret(secret_id, state, grace_end)


# --------------------------------------------------------------------- signing


def _current_key(snapshot: PlatformSnapshot) -> HmacKey:
    for key, expires_at in keys_of(snapshot):
        if expires_at is None:
            return key
    if snapshot.key_source == KeySource.PUBLIC_KEY:
        raise PublicKeysOnly(
            f"{snapshot.space_slug}/{snapshot.kind} verifies public keys only: nothing "
            "stored here can sign for it; sign with your private key (ES256, EdDSA or "
            "RS256), which a site signing for its own users gives in "
            "TRUSTED_IDENTITY['PRIVATE_KEYS']"
        )
    raise ServiceUnavailable(f"platform #{snapshot.platform_id} has no current secret")


def check_user_id(user_id: str, name: str = "the user id") -> str:
    """``user_id`` if session start would take it, else InvalidRequest: not empty, at most
    ``MAX_USER_ID_LENGTH`` characters, valid Unicode. Session start and every door that
    signs (the CLI's ``sign``, ``sign_token_for``) apply it, so no signature is made
    for an id no start can send."""
    if not isinstance(user_id, str) or user_id == "":
        raise InvalidRequest(f"{name} must not be empty")
    if len(user_id) > app_settings.MAX_USER_ID_LENGTH:
        raise InvalidRequest(f"{name} is longer than {app_settings.MAX_USER_ID_LENGTH} characters")
    try:
        user_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{name} is not valid Unicode (lone surrogate)") from None
    return user_id


def sign_user_id(snapshot: PlatformSnapshot, user_id: str) -> str:
    """The plain signature of ``user_id`` with the platform's current secret."""
    return sign(_current_key(snapshot), user_id)


def sign_for(space_slug: str, kind: str, user_id: str, actor: Actor | None = None) -> str:
    """The signature of ``user_id`` for a platform named by space slug and kind.

    With an ``actor`` (the CLI's ``sign``), they must be allowed to sign in that space,
    and an audit entry on the platform names them and the user id, never the
    signature. Without one (the sign view's hot path, which signs the logged-in
    user's own id), nothing is written.
    """
    check_user_id(user_id)
    platform = get_platform(space_slug, kind)
    if actor is not None:
        authorize(actor, "sign", platform.space_id)
    signed = sign_user_id(lookup_platform(platform.api_key), user_id)
    if actor is not None:
        audit(
            actor, platform, f"Signed user id {user_id!r} with the current secret.", action="sign"
        )
    return signed


class IssuedToken(NamedTuple):
    """A token and when it expires (its ``exp``, as an aware UTC datetime)."""

    token: str
    expires_at: datetime

    @property
    def expires_at_iso(self) -> str:
        """``expiresAt`` of the sign view: ISO 8601 in UTC, to the second (``...Z``)."""
        return iso_utc(self.expires_at)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_lifetime(snapshot: PlatformSnapshot, ttl: timedelta | None = None) -> int:
    """Seconds a new token of this platform lives: ``ttl``, or the ``TOKEN_TTL`` setting
    capped at the platform's maximum age. An explicit ``ttl`` above that maximum, or
    under a second, is an InvalidRequest."""
    if ttl is None:
        return max(1, min(int(app_settings.TOKEN_TTL.total_seconds()), snapshot.token_max_age))
    seconds = int(ttl.total_seconds())
    if seconds > snapshot.token_max_age:
        raise InvalidRequest(
            f"a token of {snapshot.space_slug}/{snapshot.kind} may live at most "
            f"{describe_duration(timedelta(seconds=snapshot.token_max_age))}, not "
            f"{describe_duration(ttl)}"
        )
    if seconds < 1:
        raise InvalidRequest("a token must live at least one second")
    return seconds


def sign_token(
    snapshot: PlatformSnapshot,
    user_id: str,
    ttl: timedelta | None = None,
    now: float | None = None,
) -> IssuedToken:
    """An HS256 token for ``user_id`` with the platform's current secret (``iat`` now,
    ``exp`` after :func:`token_lifetime`)."""
    seconds = token_lifetime(snapshot, ttl)
    issued_at = int(clock() if now is None else now)
    expires_at = issued_at + seconds
    token = make_token(_current_key(snapshot), user_id, issued_at, expires_at)
    return IssuedToken(token, datetime.fromtimestamp(expires_at, tz=dt_timezone.utc))


def sign_token_for(
    space_slug: str,
    kind: str,
    user_id: str,
    ttl: timedelta | None = None,
    actor: Actor | None = None,
) -> IssuedToken:
    """A token for ``user_id`` on a platform named by space slug and kind: the Python API.

    ``ttl`` None is the ``TOKEN_TTL`` setting, capped at the platform's maximum token
    age; a longer ``ttl`` is refused. With an ``actor`` (the CLI's ``sign --token``),
    as :func:`sign_for`: checked, and audited without the token. Made whatever the
    platform's policy, so that signers can be deployed before it accepts tokens.
    """
    check_user_id(user_id)
    platform = get_platform(space_slug, kind)
    if actor is not None:
        authorize(actor, "sign", platform.space_id)
    issued = sign_token(lookup_platform(platform.api_key), user_id, ttl)
    if actor is not None:
        audit(
            actor,
            platform,
            f"Signed user id {user_id!r} with the current secret as a token valid until "
            f"{issued.expires_at_iso}.",
            action="sign",
        )
    return issued
