"""The app's models, by what they hold: ``core`` (spaces, platforms, secrets, memberships)
and ``counts`` (what session starts leave behind). Import them from here."""

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

__all__ = [
    "AlertSent",
    "AllowedOrigin",
    "DailyDetailCount",
    "DailyOutcomeCount",
    "DetailCount",
    "DetailCountFields",
    "Dimension",
    "DistinctUsers",
    "FailureRecord",
    "Outcome",
    "OutcomeCount",
    "Platform",
    "PlatformKind",
    "PlatformSecret",
    "PruneRun",
    "Role",
    "SignatureForm",
    "Space",
    "SpaceMembership",
    "StaffGrant",
    "VerificationGeneration",
]
