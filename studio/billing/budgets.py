"""Monthly limits: a team cap and per-member limits, and the warnings as they are approached."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from studio.billing.errors import BudgetExceeded
from studio.models import BudgetWarning, CreditAccount, EntryKind, LedgerEntry, Membership, Team
from studio.outbound.events import record_credits_low

LOW_BALANCE = "low-balance"


def period_start(now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_period_start(now: datetime | None = None) -> datetime:
    start = period_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def period_key(now: datetime | None = None) -> str:
    return period_start(now).strftime("%Y-%m")


def committed(team: Team, member=None, now: datetime | None = None) -> int:
    """Credits reserved this month and not given back: held plus captured."""
    released = LedgerEntry.objects.filter(job=OuterRef("job"), kind=EntryKind.RELEASE)
    entries = LedgerEntry.objects.filter(
        team=team,
        kind=EntryKind.RESERVE,
        created_at__gte=period_start(now),
        created_at__lt=next_period_start(now),
    ).exclude(Exists(released))
    if member is not None:
        entries = entries.filter(member=member)
    return entries.aggregate(total=Sum("amount"))["total"] or 0


# A member limit not read yet (None means "no limit"), so a caller that has read it can pass it.
UNREAD = object()


def check_limits(team: Team, member, amount: int, *, account: CreditAccount, limit=UNREAD) -> None:
    """Refuse a reservation that would cross the team's cap or the member's limit this month."""
    if account.monthly_cap is not None:
        after = committed(team) + amount
        if after > account.monthly_cap:
            raise BudgetExceeded(
                f"This job would take the team's monthly spending to {after} credits, "
                f"over its cap of {account.monthly_cap} by {after - account.monthly_cap}."
            )
    limit = member_limit(team, member) if limit is UNREAD else limit
    if limit is not None:
        after = committed(team, member) + amount
        if after > limit:
            raise BudgetExceeded(
                f"This job would take your monthly spending to {after} credits, over your limit of "
                f"{limit} by {after - limit}."
            )


MAX_LIMIT = 10**12  # far beyond any real budget, well inside the column


def parse_member_limits(memberships, data) -> tuple[dict[int, int | None], list[str]]:
    """Read `limit-<membership id>` fields: a whole number of credits, or empty for no limit."""
    limits, errors = {}, []
    for membership in memberships:
        raw = (data.get(f"limit-{membership.pk}") or "").strip()
        if not raw:
            limits[membership.pk] = None
        elif (
            raw.isascii()
            and raw.isdecimal()
            and len(raw) <= len(str(MAX_LIMIT))  # int() refuses over 4,300 digits
            and int(raw) <= MAX_LIMIT
        ):
            limits[membership.pk] = int(raw)
        else:
            errors.append(
                f"The limit for {membership.user} must be a whole number of credits "
                f"from 0 to {MAX_LIMIT}, or empty for none; got {_shown(raw)}."
            )
    return limits, errors


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else f"{raw[:20]!r}… ({len(raw)} characters)"


def set_limits(account: CreditAccount, team_fields: dict, member_limits: dict[int, int | None]):
    account.monthly_cap = team_fields["monthly_cap"]
    account.low_balance_level = team_fields["low_balance_level"]
    account.save(update_fields=["monthly_cap", "low_balance_level"])
    for membership_id, limit in member_limits.items():
        Membership.objects.filter(pk=membership_id, team=account.team).update(monthly_limit=limit)


def _thresholds(key: str, who: str, used: int, limit: int) -> list[tuple[str, str]]:
    return [
        (
            f"{key}-{percent}",
            f"{who} committed {used} of {limit} credits this month: {percent}% reached.",
        )
        for percent in settings.BUDGET_WARNING_PERCENTS
        if used * 100 >= percent * limit
    ]


def member_limit(team: Team, member) -> int | None:
    found = Membership.objects.filter(team=team, user=member).values_list(
        "monthly_limit", flat=True
    )
    return found.first() if member else None


def warnings_due(
    team: Team, member, account: CreditAccount, *, limit=UNREAD
) -> list[tuple[str, str]]:
    """(key, message) for each threshold the team or member has reached this month."""
    due = []
    if account.monthly_cap:
        due += _thresholds("team-cap", "The team has", committed(team), account.monthly_cap)
    limit = member_limit(team, member) if limit is UNREAD else limit
    if limit:
        due += _thresholds(f"member-{member.pk}", f"{member} has", committed(team, member), limit)
    if account.available <= account.low_balance_level:
        due.append(
            (
                LOW_BALANCE,
                f"Only {account.available} credits are available "
                f"(the warning level is {account.low_balance_level}).",
            )
        )
    return due


def send_warnings(team: Team, member, *, limit=UNREAD) -> list[BudgetWarning]:
    """Record and mail each warning due, once per team, threshold and calendar month.

    The unique constraint, not this code, makes "once" hold when submissions race.
    """
    account = CreditAccount.objects.get(team=team)
    sent = []
    for key, message in warnings_due(team, member, account, limit=limit):
        try:
            with transaction.atomic():
                sent.append(
                    BudgetWarning.objects.create(
                        team=team, key=key, period=period_key(), message=message
                    )
                )
                if key == LOW_BALANCE:  # once a month, as the mail: the `credits.low` webhook
                    record_credits_low(account)
        except IntegrityError:
            continue
    if sent:
        owners = list(team.memberships.owners().values_list("user__email", flat=True))
        body = "\n".join(w.message for w in sent)
        transaction.on_commit(  # robust: a mail server down must not undo or break the job
            lambda: send_mail(
                f"Credits warning for {team}",
                f"{body}\n\n{settings.PUBLIC_BASE_URL}/t/{team.slug}/credits/",
                None,
                owners,
            ),
            robust=True,
        )
    return sent
