"""Errors of the service layer, each with the stable code the contract names.

The HTTP views turn them into ``{"error": {"code", "message"}}`` with ``status``;
the CLI turns them into a one-line ``CommandError``. Messages are for a person and
never carry a secret. This module imports nothing of the app (only Django's own
``PermissionDenied``, which ours extends): every layer may raise these.
``NotReady``, which carries rollout figures, lives with the readiness rule in
``services.enforcement``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied


class TrustedIdentityError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(TrustedIdentityError):
    code = "invalid_request"
    status = 400


class MissingOverrideReason(InvalidRequest):
    """Overriding a readiness rule without saying why: the admin asks for the reason; API
    and CLI clients see the same ``invalid_request`` as any other bad request."""


class NotFound(TrustedIdentityError):
    code = "platform_not_found"
    status = 404


class SpaceNotFound(NotFound):
    pass


class PlatformNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    code = "user_not_found"


class KeyNotFound(NotFound):
    """No public key of that ``kid`` on the platform."""

    code = "key_not_found"


class PublicKeysOnly(TrustedIdentityError):
    """The platform verifies public keys only: it holds no secret to reveal, rotate or
    sign with (CONTRACT section 10)."""

    code = "public_keys_only"
    status = 409


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


class PermissionDenied(TrustedIdentityError, DjangoPermissionDenied):
    """The actor's role doesn't allow this. Also Django's ``PermissionDenied``, so a view
    that lets it propagate answers 403 like any Django view, with nothing to translate."""

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
