"""The job engine's loop, run beside `qcluster`: it submits, polls and reconciles every active
job several times a second (see studio.jobs.engine).

SIGTERM or SIGINT stops it gently: it claims nothing more, lets the provider calls and webhook
sends in flight finish for at most ENGINE_STOP_SECONDS, and exits 0. A call still running then is
left to its row's lease (the next engine takes the job, as after a crash) and it exits 1 at once;
a second signal stops the waiting."""

import logging
import os
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from studio.jobs.engine import Engine
from studio.metrics import serve_process_metrics


class Command(BaseCommand):
    help = "Run the job engine loop: submit, poll and reconcile provider jobs until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--threads", type=int, default=settings.ENGINE_THREADS)

    def handle(self, *args, threads, **options):
        serve_process_metrics()  # provider calls' latency and errors, with METRICS_PORT
        engine = Engine(threads=max(1, threads), stop_seconds=settings.ENGINE_STOP_SECONDS)
        signal.signal(signal.SIGTERM, engine.stop)
        signal.signal(signal.SIGINT, engine.stop)
        if not engine.run():
            # The abandoned calls' threads must not hold the exit (Python joins them otherwise).
            sys.stdout.flush()
            sys.stderr.flush()
            logging.shutdown()
            os._exit(1)
