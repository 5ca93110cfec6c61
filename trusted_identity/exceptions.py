"""Errors of the service layer, each with the stable code the contract names.

The HTTP views turn them into ``{"error": {"code", "message"}}`` with ``status``;
the CLI turns them into a one-line ``CommandError``. Messages are for a person and
never carry a secret. This module imports nothing of the app: every layer may
raise these. ``NotReady``, which carries rollout figures, lives with the readiness
rule in ``services.enforcement``.
"""

from __future__ import annotations


class TrustedIdentityError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(TrustedIdentityError):
    code = "invalid_request"
    status = 400


class NotFound(TrustedIdentityError):
    code = "platform_not_found"
    status = 404


class SpaceNotFound(NotFound):
    pass


class PlatformNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    code = "user_not_found"


class AlreadyExists(TrustedIdentityError):
    code = "already_exists"
    status = 409


class InvalidApiKey(TrustedIdentityError):
    code = "invalid_api_key"
    status = 401


class NotAuthenticated(TrustedIdentityError):
    code = "not_authenticated"
    status = 401


class SignatureRequired(TrustedIdentityError):
    code = "signature_required"
    status = 403


class SignatureInvalid(TrustedIdentityError):
    code = "signature_invalid"
    status = 403


class PermissionDenied(TrustedIdentityError):
    code = "permission_denied"
    status = 403


class RateLimited(TrustedIdentityError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(TrustedIdentityError):
    """The platform's secrets can't be read (encryption keys) or the database is down."""

    code = "service_unavailable"
    status = 503
