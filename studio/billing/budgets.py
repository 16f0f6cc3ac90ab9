"""Monthly limits: a team cap and per-member limits, and the warnings as they are approached."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Sum
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


# --- The one definition of "this month's spending" -------------------------------------------
# A job's credits belong to the calendar month (site time zone, UTC) in which they were reserved:
# while the job runs they are held, once its video is delivered they are spent, and a refund takes
# them out again. Budgets have to count this way, because a cap or a limit is checked when a job is
# reserved: counting by capture month would let a month's jobs finish next month and slip past it.
# The usage chart and the staff pages count with the same function, so every page agrees.
def commitments(*, since: datetime, until: datetime) -> QuerySet:
    """Reservations made in [since, until) and not refunded: each one held or spent."""
    refunded = LedgerEntry.objects.filter(reservation=OuterRef("pk"), kind=EntryKind.RELEASE)
    return LedgerEntry.objects.filter(
        kind=EntryKind.RESERVE, created_at__gte=since, created_at__lt=until
    ).exclude(Exists(refunded))


def month_commitments(now: datetime | None = None) -> QuerySet:
    return commitments(since=period_start(now), until=next_period_start(now))


def committed(team: Team, member=None, now: datetime | None = None) -> int:
    """This month's spending: credits reserved this month and not refunded, held plus spent."""
    entries = month_commitments(now).filter(team=team)
    if member is not None:
        entries = entries.filter(member=member)
    return entries.aggregate(total=Sum("amount"))["total"] or 0


def committed_by_member(team: Team, now: datetime | None = None) -> dict[int | None, int]:
    """This month's spending per member (user id), in one query."""
    rows = (
        month_commitments(now)
        .filter(team=team)
        .order_by()
        .values_list("member_id")
        .annotate(total=Sum("amount"))
    )
    return dict(rows)


# --- The one definition of "low balance" ------------------------------------------------------
def is_low(available: int, level: int) -> bool:
    """Low balance: available credits at or below the team's warning level."""
    return available <= level


def low_condition(available: str, level: str) -> Q:
    """`is_low` in SQL, for a query that ranks or flags many teams at once."""
    return Q(**{f"{available}__lte": F(level)})


def account_is_low(account: CreditAccount) -> bool:
    return is_low(account.available, account.low_balance_level)


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


def set_limits(
    actor, account: CreditAccount, team_fields: dict, member_limits: dict[int, int | None]
) -> None:
    """Save the team's cap and warning level and its members' limits: all of them or, if any write
    fails, none. Recorded in the audit log with before and after, as staff edits are."""
    from studio.billing.staff import record  # staff's module imports this one

    team = account.team
    with transaction.atomic():
        locked = CreditAccount.objects.select_for_update().get(pk=account.pk)
        memberships = {
            m.pk: m
            for m in Membership.objects.filter(team=team, pk__in=member_limits)
            .select_related("user")
            .select_for_update(of=("self",))
        }
        before, after = {}, {}
        for field in ("monthly_cap", "low_balance_level"):
            if getattr(locked, field) != team_fields[field]:
                before[field], after[field] = getattr(locked, field), team_fields[field]
                setattr(locked, field, team_fields[field])
        if after:
            locked.save(update_fields=list(after))
        for membership_id, limit in member_limits.items():
            membership = memberships.get(membership_id)
            if membership is None or membership.monthly_limit == limit:
                continue
            key = f"limit of {membership.user.email}"
            before[key], after[key] = membership.monthly_limit, limit
            updated = Membership.objects.filter(pk=membership_id, team=team).update(
                monthly_limit=limit
            )
            if updated != 1:
                raise IntegrityError(f"membership {membership_id} changed while saving budgets")
        if after:
            record(actor, "budgets.edit", team, before=before, after=after)
    account.monthly_cap, account.low_balance_level = locked.monthly_cap, locked.low_balance_level


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
    if account_is_low(account):
        due.append(
            (
                LOW_BALANCE,
                f"Only {account.available} credits are available "
                f"(the warning level is {account.low_balance_level}).",
            )
        )
    return due


def send_warnings(team: Team, member, *, limit=UNREAD, account=None) -> list[BudgetWarning]:
    """Record and mail each warning due, once per team, threshold and calendar month. `account`:
    the team's, when the caller holds it locked with its figures up to date.

    The unique constraint, not this code, makes "once" hold when submissions race.
    """
    account = account or CreditAccount.objects.get(team=team)
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
