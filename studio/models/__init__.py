from studio.models.api import ApiToken, IdempotencyKey, ImageUpload, TokenScope
from studio.models.billing import (
    AuditEntry,
    BudgetWarning,
    CreditAccount,
    EntryKind,
    LedgerEntry,
    PriceBookVersion,
    PriceRule,
)
from studio.models.jobs import AssetRole, Job, JobAsset, JobState
from studio.models.providers import IncidentKind, ProviderAccount, ProviderIncident
from studio.models.teams import Invite, Membership, Role, Team
from studio.models.users import Session, User
from studio.models.webhooks import (
    DeliveryState,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "ApiToken",
    "DeliveryState",
    "IdempotencyKey",
    "ImageUpload",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "TokenScope",
    "AssetRole",
    "JobAsset",
    "AuditEntry",
    "BudgetWarning",
    "CreditAccount",
    "EntryKind",
    "LedgerEntry",
    "PriceBookVersion",
    "PriceRule",
    "ProviderAccount",
    "ProviderIncident",
    "IncidentKind",
    "Invite",
    "Job",
    "JobState",
    "Membership",
    "Role",
    "Session",
    "Team",
    "User",
]
