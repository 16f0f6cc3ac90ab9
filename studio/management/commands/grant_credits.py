from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from studio.billing import ledger
from studio.billing.errors import CreditError
from studio.billing.staff import grant_or_adjust
from studio.models import Team


class Command(BaseCommand):
    help = (
        "Grant credits to a team (by slug, or name when unique), with a reason for the audit log."
    )

    def add_arguments(self, parser):
        parser.add_argument("team", help="the team's slug or exact name")
        parser.add_argument(
            "amount", type=int, help="credits to add (negative: an adjustment down)"
        )
        parser.add_argument("--reason", required=True, help="why; kept in the ledger and audit log")

    def handle(self, *args, team, amount, reason, **options):
        matches = list(Team.objects.filter(Q(slug=team) | Q(name=team))[:2])
        if len(matches) != 1:
            raise CommandError(f"TEAM {team!r} matches {len(matches) or 'no'} teams; use its slug")
        target = matches[0]
        try:
            entry = grant_or_adjust(None, target, amount, reason)
        except CreditError as error:
            raise CommandError(str(error)) from None
        account = ledger.account(target)
        self.stdout.write(
            f"{entry.kind} of {amount} to {target}: balance {account.balance}, "
            f"available {account.available}"
        )
