from django.core.management.base import BaseCommand, CommandError

from studio.billing.checks import ledger_problems


class Command(BaseCommand):
    help = (
        "Check every team's cached credits against its ledger, and every job against its credits."
    )

    def handle(self, *args, **options):
        problems = ledger_problems()
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} ledger problem(s) found")
        self.stdout.write("ledger ok")
