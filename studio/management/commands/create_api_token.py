"""Print a new API token for a member of a team (for ops and scripts)."""

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from studio.api.tokens import create_token
from studio.models import Membership, TokenScope


class Command(BaseCommand):
    help = "Make an API token for a member of a team and print it (it is shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True, help="The member the token acts as.")
        parser.add_argument("--team", required=True, help="The team's slug or exact name.")
        parser.add_argument("--scope", choices=TokenScope.values, default=TokenScope.READ)
        parser.add_argument("--name", default="command line", help="What the token is for.")

    def handle(self, *args, email, team, scope, name, **options):
        memberships = Membership.objects.select_related("team", "user").filter(
            user__email__iexact=email
        )
        membership = memberships.filter(team__slug=team).first() or (
            memberships.filter(team__name=team).first()
        )
        if membership is None:
            raise CommandError(f"{email} is not a member of a team {team!r}.")
        try:
            _, raw = create_token(membership, name, scope)
        except (ValueError, PermissionDenied) as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(raw)
