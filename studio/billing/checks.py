"""Audit the ledger: the cached figures against the rows, and every job against its credits."""

from django.db.models import Count, Q, Sum

from studio.models import CreditAccount, EntryKind, Job, LedgerEntry
from studio.models.jobs import ACTIVE_STATES, TERMINAL_STATES

K = EntryKind


def account_problems() -> list[str]:
    problems = []
    for account in CreditAccount.objects.select_related("team"):
        totals = dict(
            LedgerEntry.objects.filter(team_id=account.team_id)
            .values_list("kind")
            .annotate(total=Sum("amount"))
            .values_list("kind", "total")
        )
        balance = totals.get(K.GRANT, 0) + totals.get(K.ADJUSTMENT, 0) - totals.get(K.CAPTURE, 0)
        held = totals.get(K.RESERVE, 0) - totals.get(K.CAPTURE, 0) - totals.get(K.RELEASE, 0)
        if (account.balance, account.held) != (balance, held):
            problems.append(
                f"team {account.team} (#{account.team_id}): cached balance/held "
                f"{account.balance}/{account.held}, the ledger says {balance}/{held}"
            )
        if balance - held < 0:
            problems.append(f"team {account.team}: available is {balance - held}, below zero")
    return problems


def job_problems() -> list[str]:
    problems = []
    jobs = Job.objects.annotate(
        reserves=Count("ledger", filter=Q(ledger__kind=K.RESERVE)),
        captures=Count("ledger", filter=Q(ledger__kind=K.CAPTURE)),
        releases=Count("ledger", filter=Q(ledger__kind=K.RELEASE)),
        settled_amount=Sum("ledger__amount", filter=Q(ledger__kind__in=[K.CAPTURE, K.RELEASE])),
    )
    for job in jobs.exclude(reserves=1, captures=0, releases=0, state__in=ACTIVE_STATES):
        name = f"job {job.pk} ({job.state})"
        if job.reserves != 1:
            problems.append(f"{name} has {job.reserves} reservations, not 1")
            continue
        settlements = job.captures + job.releases
        if job.state in TERMINAL_STATES and settlements != 1:
            problems.append(f"{name} is finished but has {settlements} settlements, not 1")
        elif job.state in ACTIVE_STATES and settlements:
            problems.append(f"{name} is still active but was already settled")
        elif job.state == "succeeded" and job.captures != 1:
            problems.append(f"{name} succeeded but its credits were released, not captured")
        elif job.state != "succeeded" and job.captures:
            problems.append(f"{name} did not succeed but its credits were captured")
        elif job.settled_amount != job.price_quoted:
            problems.append(
                f"{name} settled {job.settled_amount} of a {job.price_quoted} reservation"
            )
    orphans = LedgerEntry.objects.filter(kind__in=[K.CAPTURE, K.RELEASE]).exclude(
        job__ledger__kind=K.RESERVE
    )
    problems += [f"{e.kind} #{e.pk} of job {e.job_id} has no reservation" for e in orphans]
    return problems


def ledger_problems() -> list[str]:
    return account_problems() + job_problems()
