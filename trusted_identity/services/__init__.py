"""The business operations of Trusted Identity, in one place.

The admin, the management command and the HTTP views call these functions (as
``services.rotate_secret(...)``) and hold no rules of their own: who may do what,
how a secret is rotated, when enforcement may be turned on, how a session start
is decided and counted. Each concern has its module; a module imports only those
above it in this list, never one below:

- ``access``: actors, roles, the permission table and checks
- ``audit``: the ``AuditEvent`` (``LogEntry`` too for a user) and log line of every change
- ``durations``: grace periods as typed (``24h``) and as said
- ``lookup``: the platform snapshot of the hot path, its caches and invalidation
- ``platform_secrets``: the secret lifecycle (create, reveal, rotate)
- ``spaces``: spaces and platforms (find, create, add a platform)
- ``memberships``: grant and revoke roles in a space
- ``counting``: recording session starts: outcomes per hour, and their details
- ``retention``: folding old hourly counts into daily ones, deleting old daily ones
- ``figures``: rollout figures, the readiness rule (by distinct users)
- ``diagnostics``: reasons, client versions, the forecast, secret use, the failure
  log, ``status``
- ``enforcement``: turning enforcement on and off under the readiness rule
- ``origins``: the CORS allow-lists of web platforms
- ``signature_forms``: which signature forms a platform accepts (plain, either, token)
- ``verification``: signing and verifying a user id with a platform's keys, in either form
- ``sessions``: session start (parse, verify, decide, count)
- ``signature_tester``: a signature's verdict for those who may reveal (audited)
- ``rekey``: re-encrypting every secret under the first key

``docs/architecture.md`` shows how they fit together.
"""

from ..exceptions import TrustedIdentityError
from .access import (
    ROLE_PERMISSIONS,
    Actor,
    Permissions,
    authorize,
    authorize_superuser,
    can,
    get_cli_actor,
    permissions_for,
    restrict_to_spaces,
    role_of,
    roles_allowing,
    spaces_for,
    spaces_visible_to,
)
from .counting import ClientVersions, client_version, record_outcome, record_start
from .diagnostics import (
    Forecast,
    SecretUsage,
    VersionRow,
    failure_as_dict,
    forecast,
    forms_for,
    reasons_for,
    recent_failures,
    recent_failures_for,
    secret_usage,
    status,
    versions_for,
)
from .durations import MAX_GRACE, describe_duration, parse_duration
from .enforcement import EnforcementChange, NotReady, last_enforcement_changes, set_enforcement
from .figures import Figures, daily_figures, figures_for, readiness, readiness_since
from .lookup import (
    PlatformSnapshot,
    SecretSnapshot,
    lookup_platform,
    verification_changed,
)
from .memberships import grant, revoke
from .origins import (
    allow_origin,
    allowed_origins,
    cors_allowed,
    deny_origin,
    normalize_origin,
    origins_by_platform,
)
from .platform_secrets import (
    ROTATION_CHUNK,
    VerifyingSecret,
    current_secret_row,
    delete_expired_secrets,
    expired_kept_since,
    previous_secret_valid_until,
    reveal_secret,
    revoke_previous,
    rotate_secret,
    rotate_secrets,
    verifying_secrets,
)
from .rekey import RekeyResult, rekey
from .retention import PruneReport, RetentionState, prune, retention_state
from .sessions import SessionStart, parse_session_request, start_session
from .signature_forms import (
    FORMS,
    MAX_TOKEN_MAX_AGE,
    MIN_TOKEN_MAX_AGE,
    TokenNotReady,
    TokenUsage,
    default_form,
    needs_override,
    parse_max_age,
    set_signature_form,
    token_readiness,
    token_usage,
)
from .signature_tester import VERDICTS, SignatureVerdict, test_signature
from .spaces import (
    add_platform,
    create_space,
    get_platform,
    get_signing_platform,
    get_space,
    new_api_key,
    validate_kind,
)
from .verification import (
    IssuedToken,
    Signed,
    Verification,
    iso_utc,
    sign_for,
    sign_in_form,
    sign_token,
    sign_token_for,
    sign_user_id,
    token_lifetime,
    verify_signed,
    verify_user_id,
)

__all__ = [
    "FORMS",
    "MAX_GRACE",
    "MAX_TOKEN_MAX_AGE",
    "MIN_TOKEN_MAX_AGE",
    "ROLE_PERMISSIONS",
    "ROTATION_CHUNK",
    "VERDICTS",
    "Actor",
    "ClientVersions",
    "EnforcementChange",
    "Figures",
    "Forecast",
    "IssuedToken",
    "NotReady",
    "Permissions",
    "PlatformSnapshot",
    "PruneReport",
    "RekeyResult",
    "RetentionState",
    "SecretSnapshot",
    "SecretUsage",
    "SessionStart",
    "SignatureVerdict",
    "Signed",
    "TokenNotReady",
    "TokenUsage",
    "TrustedIdentityError",
    "Verification",
    "VerifyingSecret",
    "VersionRow",
    "add_platform",
    "allow_origin",
    "allowed_origins",
    "authorize",
    "authorize_superuser",
    "can",
    "client_version",
    "cors_allowed",
    "create_space",
    "current_secret_row",
    "daily_figures",
    "default_form",
    "delete_expired_secrets",
    "deny_origin",
    "describe_duration",
    "expired_kept_since",
    "failure_as_dict",
    "figures_for",
    "forecast",
    "forms_for",
    "get_cli_actor",
    "get_platform",
    "get_signing_platform",
    "get_space",
    "grant",
    "iso_utc",
    "last_enforcement_changes",
    "lookup_platform",
    "needs_override",
    "new_api_key",
    "normalize_origin",
    "origins_by_platform",
    "parse_duration",
    "parse_max_age",
    "parse_session_request",
    "permissions_for",
    "previous_secret_valid_until",
    "prune",
    "readiness",
    "readiness_since",
    "reasons_for",
    "recent_failures",
    "recent_failures_for",
    "record_outcome",
    "record_start",
    "rekey",
    "restrict_to_spaces",
    "retention_state",
    "reveal_secret",
    "revoke",
    "revoke_previous",
    "role_of",
    "roles_allowing",
    "rotate_secret",
    "rotate_secrets",
    "secret_usage",
    "set_enforcement",
    "set_signature_form",
    "sign_for",
    "sign_in_form",
    "sign_token",
    "sign_token_for",
    "sign_user_id",
    "spaces_for",
    "spaces_visible_to",
    "start_session",
    "status",
    "test_signature",
    "token_lifetime",
    "token_readiness",
    "token_usage",
    "validate_kind",
    "verification_changed",
    "verify_signed",
    "verify_user_id",
    "verifying_secrets",
    "versions_for",
]
