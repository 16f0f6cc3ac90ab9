"""Monthly limits: a team cap and per-member limits, and the warnings as they are approached."""

from datetime import datetime

from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from studio.billing.errors import BudgetExceeded
from studio.models import CreditAccount, EntryKind, LedgerEntry, Membership, Team


def period_start(now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def period_key(now: datetime | None = None) -> str:
    return period_start(now).strftime("%Y-%m")


def committed(team: Team, member=None, now: datetime | None = None) -> int:
    """Credits reserved this month and not given back: held plus captured."""
    released = LedgerEntry.objects.filter(job=OuterRef("job"), kind=EntryKind.RELEASE)
    entries = LedgerEntry.objects.filter(
        team=team, kind=EntryKind.RESERVE, created_at__gte=period_start(now)
    ).exclude(Exists(released))
    if member is not None:
        entries = entries.filter(member=member)
    return entries.aggregate(total=Sum("amount"))["total"] or 0


def check_limits(team: Team, member, amount: int, *, account: CreditAccount) -> None:
    """Refuse a reservation that would cross the team's cap or the member's limit this month."""
    if account.monthly_cap is not None:
        after = committed(team) + amount
        if after > account.monthly_cap:
            raise BudgetExceeded(
                f"This job would take the team's monthly spending to {after} credits, "
                f"over its cap of {account.monthly_cap} by {after - account.monthly_cap}."
            )
    limit = (
        Membership.objects.filter(team=team, user=member)
        .values_list("monthly_limit", flat=True)
        .first()
    )
    if limit is not None:
        after = committed(team, member) + amount
        if after > limit:
            raise BudgetExceeded(
                f"This job would take your monthly spending to {after} credits, over your limit of "
                f"{limit} by {after - limit}."
            )
