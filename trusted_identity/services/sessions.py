"""Session start: parse the request, verify, decide under enforcement, count, answer."""

from __future__ import annotations

import secrets
from typing import Any, NamedTuple

from ..conf import app_settings
from ..exceptions import InvalidRequest, SignatureInvalid, SignatureRequired
from ..models import Outcome
from ..tokens import looks_like_token
from .counting import NO_CLIENT, ClientVersions, record_start
from .lookup import PlatformSnapshot
from .verification import Verification, check_user_id, verify_signed

#: The longest ``signed`` of the plain form's shape; a token's is ``MAX_TOKEN_LENGTH``.
MAX_PLAIN_SIGNED_LENGTH = 256
#: The reason of an identified start that sent no ``signed``.
MISSING = "missing"


class SessionStart(NamedTuple):
    """A started session: what the answer says, and what verification found.

    A named tuple, not a frozen dataclass: as immutable, and made in a third of the time
    (a frozen dataclass sets each field through ``object.__setattr__``), once per start.
    """

    session_id: str
    user_id: str | None
    signature: str  # valid | invalid | missing | none
    space: str
    platform: str
    #: What verification found (form, reason), for the counts; never in the answer.
    verification: Verification | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def trusted(self) -> bool:
        return self.signature == "valid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "anonymous": self.anonymous,
            "userId": self.user_id,
            "trusted": self.trusted,
            "signature": self.signature,
            "space": self.space,
            "platform": self.platform,
        }


def parse_session_request(payload: Any) -> tuple[str | None, str | None]:
    """``(user_id, signed)`` from a decoded session-start body, or InvalidRequest.

    ``null`` counts as absent; an empty ``signed`` counts as missing; an empty
    ``userId`` is an error (a visitor sends no ``userId`` at all).
    """
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    user_id = payload.get("userId")
    signed = payload.get("signed")
    fields = payload.get("fields")
    if fields is not None and not isinstance(fields, dict):
        raise InvalidRequest("fields must be a JSON object")
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidRequest("userId must be a string")
    if signed is not None and not isinstance(signed, str):
        raise InvalidRequest("signed must be a string")
    if user_id == "":
        raise InvalidRequest("userId must not be empty (send no userId for a visitor)")
    if user_id is not None:
        check_user_id(user_id, "userId")
    if signed is not None and user_id is None:
        raise InvalidRequest("signed was sent without userId")
    if signed == "":
        signed = None
    if signed is not None and len(signed) > MAX_PLAIN_SIGNED_LENGTH:
        if not looks_like_token(signed):
            raise InvalidRequest("signed is too long to be a signature")
        if len(signed) > app_settings.MAX_TOKEN_LENGTH:
            raise InvalidRequest(
                f"signed is longer than {app_settings.MAX_TOKEN_LENGTH} characters, too long "
                "to be a token"
            )
    return user_id, signed


def start_session(
    snapshot: PlatformSnapshot, payload: Any, client: ClientVersions = NO_CLIENT
) -> SessionStart:
    """Verify the signature, decide, count, answer, for a platform from ``lookup_platform``.

    Raises InvalidRequest, SignatureRequired or SignatureInvalid; every decided
    start is counted once by its outcome (``rejected`` for a start that
    enforcement refused), with its details (reason, form, secret, ``client``
    versions, the user for the distinct counts) for the rollout diagnostics.
    """
    user_id, signed = parse_session_request(payload)
    verification = None
    if user_id is None:
        signature, outcome = "none", Outcome.VISITOR
    elif signed is None:
        signature, outcome = "missing", Outcome.MISSING
    else:
        # Either form; the reason of an invalid one is never in the answer (no oracle).
        verification = verify_signed(snapshot, user_id, signed)
        if verification.valid:
            signature, outcome = "valid", Outcome.VALID
        else:
            signature, outcome = "invalid", Outcome.INVALID

    if snapshot.enforced and signature in ("missing", "invalid"):
        _count(snapshot, Outcome.REJECTED, user_id, verification, client)
        if signature == "missing":
            raise SignatureRequired(
                "Trusted Identity is enforced for this platform: send `signed` with the userId"
            )
        raise SignatureInvalid("the signature does not match the userId for this platform")

    _count(snapshot, outcome, user_id, verification, client)
    return SessionStart(
        session_id=secrets.token_urlsafe(18),
        user_id=user_id,
        signature=signature,
        space=snapshot.space_slug,
        platform=snapshot.kind,
        verification=verification,
    )


def _count(
    snapshot: PlatformSnapshot,
    outcome: str,
    user_id: str | None,
    verification: Verification | None,
    client: ClientVersions,
) -> None:
    if verification is None:
        # An identified start without ``signed``: the reason ``missing``, whether it was
        # counted missing or rejected (CONTRACT section 8).
        reason = MISSING if user_id is not None else None
        record_start(snapshot.platform_id, outcome, user_id, reason=reason, client=client)
        return
    secret_id = getattr(verification, "secret_id", None)
    grace_end = None
    if secret_id is not None:
        for secret in snapshot.secrets:
            if secret.secret_id == secret_id:
                grace_end = secret.expires_at
                break
    record_start(
        snapshot.platform_id,
        outcome,
        user_id,
        form=verification.form,
        reason=verification.reason,
        secret_id=secret_id,
        grace_end=grace_end,
        key_id=verification.key_id,
        client=client,
    )
