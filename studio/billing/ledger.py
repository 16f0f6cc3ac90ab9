"""Every credit movement. Each function writes one ledger row and moves the cached account in the
same transaction; the database's constraints (available ≥ 0, one reservation and one settlement
per job) hold even if this code is wrong."""

from django.db import transaction
from django.db.models import F

from studio.billing import budgets
from studio.billing.errors import CreditError
from studio.models import CreditAccount, EntryKind, Job, LedgerEntry, Team
from studio.models.billing import EFFECTS

K = EntryKind


def account(team: Team, *, lock: bool = False) -> CreditAccount:
    accounts = CreditAccount.objects.select_for_update() if lock else CreditAccount.objects
    found = accounts.filter(team=team).first()
    if found is None:
        CreditAccount.objects.get_or_create(team=team)
        found = accounts.get(team=team)
    return found


def _write(team: Team, kind: str, amount: int, locked=None, **fields) -> LedgerEntry:
    """The ledger row and the account's cached figures; `locked`: the account as the caller
    read it under its lock, whose figures are kept up to date too."""
    entry = LedgerEntry.objects.create(team=team, kind=kind, amount=amount, **fields)
    d_balance, d_held = EFFECTS[K(kind)]
    CreditAccount.objects.filter(team=team).update(
        balance=F("balance") + d_balance * amount, held=F("held") + d_held * amount
    )
    if locked is not None:
        locked.balance += d_balance * amount
        locked.held += d_held * amount
    return entry


def grant(team: Team, amount: int, *, actor, reason: str) -> LedgerEntry:
    if amount <= 0:
        raise CreditError("A grant must be a positive number of credits.")
    if not reason.strip():
        raise CreditError("A grant needs a reason.")
    with transaction.atomic():
        account(team, lock=True)
        return _write(team, K.GRANT, amount, actor=actor, reason=reason.strip())


def adjust(team: Team, amount: int, *, actor, reason: str) -> LedgerEntry:
    """A staff correction, up or down; it cannot take available credits below zero."""
    if amount == 0:
        raise CreditError("An adjustment must change the balance.")
    if not reason.strip():
        raise CreditError("An adjustment needs a reason.")
    with transaction.atomic():
        current = account(team, lock=True)
        if current.available + amount < 0:
            raise CreditError(
                f"That would take available credits to {current.available + amount}; "
                f"only {current.available} are available."
            )
        return _write(team, K.ADJUSTMENT, amount, actor=actor, reason=reason.strip())


def reserve(job: Job, *, limit=budgets.UNREAD) -> CreditAccount:
    """Hold the job's quoted price. Call inside the transaction that creates the job.
    `limit`: the creator's monthly limit, when the caller has read it. Returns the team's account
    as the hold left it (still locked, so these figures are the row's until the commit)."""
    current = account(job.team, lock=True)  # serialises a team's reservations and budget checks
    if current.available < job.price_quoted:
        short = job.price_quoted - current.available
        raise CreditError(
            f"This job costs {job.price_quoted} credits but the team has {current.available} "
            f"available: {short} short."
        )
    budgets.check_limits(job.team, job.creator, job.price_quoted, account=current, limit=limit)
    _write(
        job.team,
        K.RESERVE,
        job.price_quoted,
        job=job,
        member=job.creator,
        provider=job.provider,
        actor=job.creator,
        locked=current,
    )
    return current


def _settle(job_id, kind: str, reason: str) -> bool:
    """Capture or release a job's reservation; False if there is none or it is already settled."""
    reservation = (
        LedgerEntry.objects.filter(job_id=job_id, kind=K.RESERVE).select_related("team").first()
    )
    if reservation is None or LedgerEntry.objects.filter(reservation=reservation).exists():
        return False
    # Constraint violations (a second settlement, a cached figure out of range) propagate: the
    # caller's transaction, which moved the job to its terminal state, must roll back with them.
    _write(
        reservation.team,
        kind,
        reservation.amount,
        reservation=reservation,
        job_id=job_id,
        member_id=reservation.member_id,
        provider=reservation.provider,
        reason=reason,
    )
    return True


def capture(job_id) -> bool:
    return _settle(job_id, K.CAPTURE, "Video delivered")


def release(job_id, reason: str) -> bool:
    return _settle(job_id, K.RELEASE, reason[:300])
