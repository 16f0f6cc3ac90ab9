"""The job engine's loop, run beside `qcluster`: it submits, polls and reconciles every active
job several times a second (see studio.jobs.engine)."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from studio.jobs.engine import Engine


class Command(BaseCommand):
    help = "Run the job engine loop: submit, poll and reconcile provider jobs until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=settings.ENGINE_THREADS)

    def handle(self, *args, threads, **options):
        engine = Engine(threads=max(1, threads))
        signal.signal(signal.SIGTERM, engine.stop)
        signal.signal(signal.SIGINT, engine.stop)
        engine.run()
