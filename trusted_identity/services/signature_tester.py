"""The signature tester: a user id and a signature in, a verdict out (CONTRACT section 8).

For the members who may reveal the secret (the admin's settings page and the CLI's
``test-signature``), never for the public endpoint: the verdict says which secret a
signature matched, which session start never tells (no oracle). Each test is
permission-checked, rate-limited per actor (``TESTER_RATE_LIMIT``) and audited with
the user id, never the signature. The verification is session start's own
(``verification.verify_signed``, which gives what a start would count); the verdict
then names the secret the signature matched, among every secret verification knows
of the platform: the current one, previous ones in their grace, the expired ones it
keeps, and the current secrets of the space's other platforms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from ..conf import app_settings
from ..exceptions import InvalidRequest, RateLimited
from ..models import Platform, PlatformSecret
from ..ratelimit import hit
from ..signing import decode_signature, match_index
from ..tokens import looks_like_token
from ..tokens import match_index as token_match_index
from .access import Actor, authorize
from .audit import audit
from .lookup import diagnostic_keys, key_table, lookup_platform
from .sessions import parse_session_request
from .signature_forms import PLAIN, TOKEN
from .spaces import get_platform
from .verification import clock, verify_signed

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
    form: str  # plain | token
    reason: str | None
    token_reason: str | None
    hashed: bytes
    secret_id: int | None = None
    secret_created_at: datetime | None = None
    grace_end: datetime | None = None  # a previous secret's end of grace, or an expired one's
    other_platform: str | None = None  # the kind of the other platform whose secret matched

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
        when = "" if self.grace_end is None else f"{self.grace_end:%Y-%m-%d %H:%M:%S %Z}"
        secret = f"secret #{self.secret_id}"
        words = {
            VALID_CURRENT: f"Signed with the current {secret} of {self.platform}.",
            VALID_PREVIOUS: f"Signed with the previous {secret} of {self.platform}, which "
            f"verifies until {when}.",
            EXPIRED_SECRET: f"Signed with {secret} of {self.platform}, whose grace ended "
            f"{when}: it no longer verifies.",
            OTHER_PLATFORM: f"Signed with the current secret of the {self.other_platform} "
            f"platform of the space, not with {self.platform}'s.",
            MALFORMED: "Not a signature: neither 64 hex digits nor a well-formed token.",
            NO_MATCH: f"Matches no secret of {self.platform}: check the bytes hashed.",
        }[self.verdict]
        if self.secret_id is not None and not self.accepted and self.verdict.startswith("valid"):
            words += f" A session start would still count it invalid: {self.reason}."
        return f"{words}\nBytes hashed ({self.hashed_length}): {self.hashed_hex}"

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


def test_signature(
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
    verdict = _verdict(platform, user_id, signature, clock() if now is None else now)
    audit(actor, platform, f"Tested a signature of user id {user_id!r}: {verdict.verdict}.")
    return verdict


test_signature.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


def _verdict(platform: Platform, user_id: str, signature: str, now: float) -> SignatureVerdict:
    snapshot = lookup_platform(platform.api_key)
    verification = verify_signed(snapshot, user_id, signature, now)
    is_token = looks_like_token(signature)
    table = key_table(snapshot)
    live = [
        (key, pk, expires_at)
        for (key, expires_at), pk in zip(table.entries, table.ids, strict=True)
        if expires_at is None or expires_at > now
    ]
    diagnostic_key_list, diagnostic = diagnostic_keys(snapshot, now)
    keys = [key for key, _, _ in live] + list(diagnostic_key_list)
    if is_token:
        index = token_match_index(keys, signature, max_length=app_settings.MAX_TOKEN_LENGTH)
        hashed = signature[: signature.rindex(".")].encode("utf-8")
    else:
        index = match_index(keys, user_id, signature)
        hashed = user_id.encode("utf-8")
    reason = verification.reason
    fields: dict[str, Any] = {
        "platform": f"{snapshot.space_slug}/{snapshot.kind}",
        "form": TOKEN if is_token else PLAIN,
        "reason": reason,
        "token_reason": reason if is_token and reason and reason.startswith("token_") else None,
        "hashed": hashed,
    }
    if index < 0:
        unreadable = reason == "token_malformed" or (
            not is_token and decode_signature(signature) is None
        )
        return SignatureVerdict(verdict=MALFORMED if unreadable else NO_MATCH, **fields)
    if index < len(live):
        _, secret_id, expires_at = live[index]
        verdict = VALID_CURRENT if expires_at is None else VALID_PREVIOUS
        grace_end, other = _moment(expires_at), None
    else:
        found = diagnostic[index - len(live)]
        secret_id, other = found.secret_id, found.kind
        verdict = OTHER_PLATFORM if other is not None else EXPIRED_SECRET
        grace_end = _moment(found.expires_at)
    created = (
        PlatformSecret.objects.filter(pk=secret_id).values_list("created_at", flat=True).first()
    )
    return SignatureVerdict(
        verdict=verdict,
        secret_id=secret_id,
        secret_created_at=created,
        grace_end=grace_end,
        other_platform=other,
        **fields,
    )
