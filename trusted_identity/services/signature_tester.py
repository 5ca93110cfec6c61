"""The signature tester: a user id and a signature in, a verdict out (CONTRACT section 8).

For the members who may reveal the secret (the admin's settings page and the CLI's
``test-signature``), never for the public endpoint: the verdict says which secret a
signature matched, which session start never tells (no oracle). Each test is
permission-checked, rate-limited per actor (``TESTER_RATE_LIMIT``) and audited with
the user id, never the signature. Verification decides
(``verification.explain_signed``: what a session start would count, and the secret the
signature was made with, among every secret verification knows of the platform: the
current one, previous ones in their grace, the expired ones it keeps, and the current
secrets of the space's other platforms; for a public-key token, the key its ``kid``
named: which one verified it, or why none did); this module words it as a verdict.

When a plain signature matches no secret for the id as given, the usual mistakes
(``idvariants``: the id trimmed, case-changed, normalised, another spelling of the
same number, JSON-quoted, URL-encoded...) are tried, each once against the same
secrets (``verification.matching_secret``), and the first that matches is named:
bounded work (at most ``idvariants.MAX_VARIANTS``), inside the same rate limit, in the
same audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from ..conf import app_settings
from ..exceptions import InvalidRequest, RateLimited
from ..formatting import moment, visible
from ..idvariants import IdVariant, id_variants
from ..jwtparts import read_header
from ..keytokens import KEY_EXPIRED, UNKNOWN_KEY, VerifyingKey
from ..models import Platform, PlatformSecret
from ..publickeys import PublicKey
from ..ratelimit import hit
from ..tokens import TOKEN_MALFORMED
from . import verification
from .access import Actor, authorize
from .audit import audit
from .lookup import PlatformSnapshot, lookup_platform
from .sessions import parse_session_request
from .signature_forms import TOKEN
from .spaces import get_platform

VALID_CURRENT = "valid-current"
VALID_PREVIOUS = "valid-previous"
EXPIRED_SECRET = "expired-secret"
OTHER_PLATFORM = "other-platform"
MALFORMED = "malformed"
NO_MATCH = "no-match"
VERDICTS = (VALID_CURRENT, VALID_PREVIOUS, EXPIRED_SECRET, OTHER_PLATFORM, MALFORMED, NO_MATCH)

_STATES = {
    VALID_CURRENT: "current",
    VALID_PREVIOUS: "previous",
    EXPIRED_SECRET: "expired",
    OTHER_PLATFORM: "other_platform",
}

#: The permission the tester needs in the space: whoever may see the secret.
TESTER_PERMISSION = "reveal"
#: The longest ``kid`` of a token's header the verdict repeats (a stored key's is 128).
_KID_SHOWN = 128


@dataclass(frozen=True)
class KeyFound:
    """The public key a public-key token named: the one that verified it, or its expired
    key (``key_expired``), or the one whose signature it carries while its claims or
    the platform's key source refuse it."""

    kid: str
    alg: str
    description: str  # EC P-256, Ed25519, RSA 3,072 bits
    fingerprint: str
    expires_at: datetime | None
    expired: bool
    key_id: int | None  # its row; None for a key not stored here

    @classmethod
    def of(cls, key: VerifyingKey, now: float) -> KeyFound:
        public = PublicKey.of(key.key)
        return cls(
            kid=key.kid,
            alg=key.alg,
            description=public.description,
            fingerprint=public.fingerprint,
            expires_at=_moment(key.expires_at),
            expired=key.expired(now),
            key_id=key.key_id,
        )

    @property
    def words(self) -> str:
        """``'k1' (EC P-256, ES256, SHA256:...)``."""
        return f"{self.kid!r} ({self.description}, {self.alg}, {self.fingerprint})"

    def as_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "key": self.description,
            "fingerprint": self.fingerprint,
            "expires_at": _iso(self.expires_at),
            "state": "expired" if self.expired else "active",
        }


@dataclass(frozen=True)
class SignatureVerdict:
    """What the tester found. ``verdict`` is one of :data:`VERDICTS`; the secret fields
    describe the secret the signature matched (none for ``malformed`` and ``no-match``).

    ``reason`` is what a session start with this signature would count (None: valid),
    which also says when a matching signature is still refused (``form_not_allowed``,
    or a token's ``token_expired``...); ``token_reason`` is a token's own reason.
    ``hashed`` is what the HMAC was computed over: the user id's UTF-8 bytes, or for
    a token its first two segments.
    """

    platform: str  # "space/kind"
    verdict: str
    form: str  # plain | token | public-key
    reason: str | None
    token_reason: str | None
    hashed: bytes
    secret_id: int | None = None
    secret_created_at: datetime | None = None
    grace_end: datetime | None = None  # a previous secret's end of grace, or an expired one's
    other_platform: str | None = None  # the kind of the other platform whose secret matched
    #: For ``no-match``: the id the signature was made for, and how it differs.
    variant: IdVariant | None = None
    variant_secret: verification.MatchedSecret | None = None
    #: For a public-key token: the key it named (see :class:`KeyFound`), and the ``kid``
    #: its header named (``unknown_key``: none of the platform's).
    key: KeyFound | None = None
    token_kid: str | None = None

    @property
    def public_key(self) -> bool:
        """Whether ``signed`` was a public-key token (judged by the platform's keys)."""
        return self.form == verification.PUBLIC_KEY

    @property
    def accepted(self) -> bool:
        """Whether a session start with this signature would count it valid."""
        return self.reason is None

    @property
    def hashed_hex(self) -> str:
        return self.hashed.hex()

    @property
    def hashed_length(self) -> int:
        return len(self.hashed)

    def describe(self) -> str:
        """The verdict in words, for a person (the CLI's stderr), with the bytes hashed."""
        if self.public_key:
            return self._describe_key_token()
        when = moment(self.grace_end)
        words = {
            VALID_CURRENT: f"Signed with the current secret of {self.platform}.",
            VALID_PREVIOUS: f"Signed with a previous secret of {self.platform}, which "
            f"verifies until {when}.",
            EXPIRED_SECRET: f"Signed with an earlier secret of {self.platform}, whose grace "
            f"ended {when}: it no longer verifies.",
            OTHER_PLATFORM: f"Signed with the current secret of the {self.other_platform} "
            f"platform of the space, not with {self.platform}'s.",
            MALFORMED: "Not a signature: neither 64 hex digits nor a well-formed token.",
            NO_MATCH: f"Matches no secret of {self.platform}: check the bytes hashed.",
        }[self.verdict]
        if self.secret_id is not None and not self.accepted and self.verdict.startswith("valid"):
            words += f" A session start would still count it invalid: {self.reason}."
        if self.variant is not None:
            words += f" {self.variant_sentence()}"
        return f"{words}\nBytes hashed ({self.hashed_length}): {self.hashed_hex}"

    def key_sentence(self) -> str:
        """What the platform's public keys say of a public-key token, in one sentence."""
        key, kid = self.key, self.token_kid
        if key is not None and self.reason == KEY_EXPIRED:
            return (
                f"Signed with public key {key.words} of {self.platform}, which expired "
                f"{moment(key.expires_at)}: it no longer verifies."
            )
        if key is not None:
            return f"Verified by public key {key.words} of {self.platform}."
        if self.verdict == MALFORMED:
            return (
                "Not a well-formed public-key token: its shape, its header, its algorithm "
                "for the key its kid names, its signature's length or its claims."
            )
        if self.reason == UNKNOWN_KEY and kid is None:
            return (
                f"Names no key: the token has no kid and {self.platform} has more than one "
                "public key that verifies."
            )
        if self.reason == UNKNOWN_KEY:
            return f"Names no public key of {self.platform}: no key has the kid {kid!r}."
        named = f"public key {kid!r}" if kid is not None else "its public key"
        return f"Matches no key of {self.platform}: its signature is not one of {named}."

    def _describe_key_token(self) -> str:
        words = self.key_sentence()
        if self.key is not None and not self.accepted and self.reason != KEY_EXPIRED:
            words += f" A session start would still count it invalid: {self.reason}."
        return f"{words}\nBytes signed ({self.hashed_length}): {self.hashed_hex}"

    def variant_sentence(self) -> str:
        """``This signature is for the id 'user-1 ' (with a trailing space), signed with
        the current secret.``: the hint of a ``no-match`` whose id was changed."""
        if self.variant is None:
            return ""
        return (
            f"This signature is for the id {visible(repr(self.variant.user_id))} "
            f"({self.variant.change}), signed with {self.variant_secret_words()}."
        )

    def variant_secret_words(self) -> str:
        found = self.variant_secret
        if found is None:
            return ""
        if found.state == "other_platform":
            return f"the current secret of the {found.other_kind} platform"
        return {
            "current": "the current secret",
            "previous": "a previous secret, still in its grace",
            "expired": "an expired secret, whose grace has ended",
        }.get(found.state, "a secret")

    def as_json(self) -> dict[str, Any]:
        secret = None
        if self.secret_id is not None:
            secret = {
                "id": self.secret_id,
                "created_at": _iso(self.secret_created_at),
                "state": _STATES[self.verdict],
                "platform": self.other_platform or self.platform.rsplit("/", 1)[-1],
            }
        return {
            "verdict": self.verdict,
            "platform": self.platform,
            "form": self.form,
            "accepted": self.accepted,
            "reason": self.reason,
            "token_reason": self.token_reason,
            "secret": secret,
            "grace_end": _iso(self.grace_end),
            "bytes_hex": self.hashed_hex,
            "bytes_length": self.hashed_length,
            "variant": None
            if self.variant is None
            else {"user_id": self.variant.user_id, "change": self.variant.change},
            "key": None if self.key is None else self.key.as_json(),
            "kid": self.token_kid,
        }


def _iso(moment: datetime | None) -> str | None:
    return (
        None
        if moment is None
        else moment.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")
    )


def _moment(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=dt_timezone.utc)


def check_input(user_id: Any, signature: Any) -> None:
    """The tester takes what session start would take (``sessions.parse_session_request``:
    the same lengths, the same refusal of lone surrogates); anything else, and an empty
    user id or signature, is an InvalidRequest."""
    if not isinstance(user_id, str) or user_id == "":
        raise InvalidRequest("the user id must not be empty")
    if not isinstance(signature, str) or signature == "":
        raise InvalidRequest("the signature must not be empty")
    parse_session_request({"userId": user_id, "signed": signature})


def check_signature(
    actor: Actor,
    space_or_platform: str | Platform,
    kind: str | None,
    user_id: str,
    signature: str,
    now: float | None = None,
) -> SignatureVerdict:
    """The verdict on ``signature`` for ``user_id`` on a platform (a Platform, or a space
    slug and ``kind``), for an actor who may reveal its secret. Rate-limited per actor
    (RateLimited), audited with the user id but never the signature."""
    if isinstance(space_or_platform, Platform):
        platform = space_or_platform
    else:
        platform = get_platform(space_or_platform, kind or "")
    authorize(actor, TESTER_PERMISSION, platform.space_id)
    check_input(user_id, signature)
    wait = hit("tester", actor.key, app_settings.TESTER_RATE_LIMIT)
    if wait is not None:
        raise RateLimited(f"too many signature tests; try again in {wait} s", wait)
    verdict = _verdict(platform, user_id, signature, verification.clock() if now is None else now)
    found = ""
    if verdict.variant is not None:
        found = f" It is for the id {verdict.variant.user_id!r} ({verdict.variant.change})."
    audit(
        actor,
        platform,
        f"Tested a signature of user id {user_id!r}: {verdict.verdict}.{found}",
        action="test_signature",
    )
    return verdict


#: The verdict on a signature by the state of the secret it was made with.
_VERDICT_OF_STATE = {state: verdict for verdict, state in _STATES.items()}
#: The reasons of a ``signed`` that is no signature at all, plain or token.
_UNREADABLE = (verification.MALFORMED, TOKEN_MALFORMED)


def _verdict(platform: Platform, user_id: str, signature: str, now: float) -> SignatureVerdict:
    """Verification decides (:func:`verification.explain_signed`); this only words it."""
    snapshot = lookup_platform(platform.api_key)
    decided, secret, key = verification.explain_signed(snapshot, user_id, signature, now)
    reason = decided.reason
    is_token = decided.form in (TOKEN, verification.PUBLIC_KEY)
    fields: dict[str, Any] = {
        "platform": f"{snapshot.space_slug}/{snapshot.kind}",
        "form": decided.form,
        "reason": reason,
        "token_reason": reason if is_token and reason and reason.startswith("token_") else None,
        # What the HMAC is over: a token's first two segments, or the user id.
        "hashed": (signature[: signature.rindex(".")] if is_token else user_id).encode("utf-8"),
    }
    if decided.form == verification.PUBLIC_KEY:
        return _key_verdict(key, signature, now, fields)
    if secret is None:
        if reason in _UNREADABLE:
            return SignatureVerdict(verdict=MALFORMED, **fields)
        variant, matched = (None, None) if is_token else _variant(snapshot, user_id, signature, now)
        return SignatureVerdict(verdict=NO_MATCH, variant=variant, variant_secret=matched, **fields)
    created = (
        PlatformSecret.objects.filter(pk=secret.secret_id)
        .values_list("created_at", flat=True)
        .first()
    )
    return SignatureVerdict(
        verdict=_VERDICT_OF_STATE[secret.state],
        secret_id=secret.secret_id,
        secret_created_at=created,
        grace_end=_moment(secret.grace_end),
        other_platform=secret.other_kind,
        **fields,
    )


def _key_verdict(
    key: VerifyingKey | None, signature: str, now: float, fields: dict[str, Any]
) -> SignatureVerdict:
    """A public-key token's verdict, in the tester's words: ``valid-current`` for a key
    whose signature it carries (a start may still refuse its claims or its form),
    ``expired-secret`` for an expired key, ``malformed``, or ``no-match`` (no key of
    the platform, or not its signature)."""
    found = None if key is None else KeyFound.of(key, now)
    if found is not None:
        verdict = EXPIRED_SECRET if fields["reason"] == KEY_EXPIRED else VALID_CURRENT
    elif fields["reason"] in _UNREADABLE:
        verdict = MALFORMED
    else:
        verdict = NO_MATCH
    grace_end = found.expires_at if verdict == EXPIRED_SECRET and found is not None else None
    return SignatureVerdict(
        verdict=verdict, key=found, token_kid=_header_kid(signature), grace_end=grace_end, **fields
    )


def _header_kid(token: str) -> str | None:
    """The ``kid`` a token's header names, to repeat in the verdict (printable, at most
    :data:`_KID_SHOWN` characters); None without one or a readable header."""
    segment = token.partition(".")[0]
    header = read_header(segment) if segment.isascii() else None
    kid = None if header is None else header.get("kid")
    return None if kid is None else visible(kid[:_KID_SHOWN])


def _variant(
    snapshot: PlatformSnapshot, user_id: str, signature: str, now: float
) -> tuple[IdVariant | None, verification.MatchedSecret | None]:
    """The first usual mistake (``idvariants``) whose id the plain ``signature`` matches a
    secret for, with that secret; (None, None) when none does. Only ids a session start
    could have sent are tried; each once against the platform's secrets."""
    for variant in id_variants(user_id):
        if len(variant.user_id) > app_settings.MAX_USER_ID_LENGTH:
            continue
        try:
            variant.user_id.encode("utf-8")
        except UnicodeEncodeError:
            continue
        matched = verification.matching_secret(snapshot, variant.user_id, signature, now)
        if matched is not None:
            return variant, matched
    return None, None
