"""The app's models, by what they hold: ``core`` (spaces, platforms, secrets, memberships)
``counts`` (what session starts leave behind) and ``records`` (audit events and policy
changes). Import them from here."""

from .core import (
    AllowedOrigin,
    Outcome,
    Platform,
    PlatformKind,
    PlatformSecret,
    Role,
    SignatureForm,
    Space,
    SpaceMembership,
    StaffGrant,
    VerificationGeneration,
)
from .counts import (
    AlertSent,
    DailyDetailCount,
    DailyOutcomeCount,
    DetailCount,
    DetailCountFields,
    Dimension,
    DistinctUsers,
    FailureRecord,
    OutcomeCount,
    PruneRun,
)
from .records import ActorFields, AuditEvent, Door, PolicyChange, PolicySetting

__all__ = [
    "ActorFields",
    "AlertSent",
    "AllowedOrigin",
    "AuditEvent",
    "DailyDetailCount",
    "DailyOutcomeCount",
    "DetailCount",
    "DetailCountFields",
    "Dimension",
    "DistinctUsers",
    "Door",
    "FailureRecord",
    "Outcome",
    "OutcomeCount",
    "Platform",
    "PlatformKind",
    "PlatformSecret",
    "PolicyChange",
    "PolicySetting",
    "PruneRun",
    "Role",
    "SignatureForm",
    "Space",
    "SpaceMembership",
    "StaffGrant",
    "VerificationGeneration",
]
