"""Running the sends: a small thread pool per worker task (`deliver_due`) and one inside the
`run_engine` loop, which nudges in its own process wake at once instead of queueing a task."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from studio.outbound.delivery import Claim, claim_due, send

log = logging.getLogger(__name__)


class Sender:
    """A small thread pool that claims only as many deliveries as it has free threads, so a
    claimed delivery goes out within moments, never after a queue of slow ones."""

    def __init__(self, threads: int | None = None, tick_every: float = 1.0):
        self.threads = threads or settings.WEBHOOK_THREADS
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="webhooks")
        self.free = self.threads
        self.changed = threading.Condition()
        self.woken = threading.Event()
        self.tick_every = timedelta(seconds=tick_every)
        self.next_look = timezone.now()

    def tick(self, now: datetime | None = None, *, force: bool = False) -> int:
        """Claim and start what is due; between wake-ups, look at most every `tick_every`."""
        now = now or timezone.now()
        if not (force or self.woken.is_set() or now >= self.next_look):
            return 0
        self.woken.clear()
        self.next_look = now + self.tick_every
        with self.changed:
            free = self.free
        if free <= 0:
            return 0
        claims = claim_due(now, limit=free)
        with self.changed:
            self.free -= len(claims)
        for claim in claims:
            self.pool.submit(self._send, claim)
        return len(claims)

    def _send(self, claim: Claim) -> None:
        try:
            send(claim)
        except Exception:  # the row keeps its lease and falls due again when it runs out
            log.exception("webhook delivery %s failed to send", claim.delivery_id)
        finally:
            close_old_connections()
            with self.changed:
                self.free += 1
                self.changed.notify_all()

    def drain(self, seconds: float) -> int:
        """Send until nothing is due and nothing is in flight, claiming for at most `seconds`."""
        claimed_in_all = 0
        stop_claiming = time.monotonic() + seconds
        while time.monotonic() < stop_claiming:
            claimed = self.tick(force=True)
            claimed_in_all += claimed
            with self.changed:
                if not claimed and self.free == self.threads:
                    break  # a retry (5 s away at the soonest) is for the engine loop or the sweep
                self.changed.wait(0.5)  # until a thread is free again
        return claimed_in_all

    def shutdown(self, wait: bool = True) -> None:
        """Take no more deliveries; with `wait`, until those in flight are sent."""
        self.pool.shutdown(wait=wait)

    def in_flight(self) -> int:
        """Deliveries being sent now."""
        with self.changed:
            return self.threads - self.free


_local = {"sender": None}


def run_locally(sender: Sender | None) -> None:
    """Register the sender of a long-running loop (run_engine): nudges in this process wake it
    instead of queueing a task."""
    _local["sender"] = sender


def wake_local_sender() -> bool:
    sender = _local["sender"]
    if sender is None:
        return False
    sender.woken.set()
    return True


def deliver_due(now: datetime | None = None, *, threads: int | None = None) -> int:
    """Send everything due (the worker task). One thread: in this thread, with `now` as the clock,
    which is how tests drive the schedule."""
    if threads == 1:
        sent = 0
        while claims := claim_due(now):
            for claim in claims:
                send(claim, now)
            sent += len(claims)
        return sent
    sender = Sender(threads)
    try:
        return sender.drain(settings.TASK_TIME_LIMIT / 2)
    finally:
        sender.shutdown()
