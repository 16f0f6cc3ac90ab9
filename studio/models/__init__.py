from studio.models.billing import (
    AuditEntry,
    BudgetWarning,
    CreditAccount,
    EntryKind,
    LedgerEntry,
    PriceBookVersion,
    PriceRule,
)
from studio.models.jobs import Job, JobState
from studio.models.teams import Invite, Membership, Role, Team
from studio.models.users import User

__all__ = [
    "AuditEntry",
    "BudgetWarning",
    "CreditAccount",
    "EntryKind",
    "LedgerEntry",
    "PriceBookVersion",
    "PriceRule",
    "Invite",
    "Job",
    "JobState",
    "Membership",
    "Role",
    "Team",
    "User",
]
