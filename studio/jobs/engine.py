"""The job engine: one loop owns every active row. Each tick claims what is due — queued jobs to
submit, running jobs to poll, finished outputs to copy, submissions whose lease ran out — and
hands the provider calls to a thread pool. Nobody sleeps waiting for a provider: a job waiting
on one is just a row with `next_poll_at`.

A claim is one transaction: the due rows are locked with SKIP LOCKED (another engine process
takes the others), the account's rate-limit tokens are taken, and `next_poll_at` is pushed past
the call's lease before any HTTP call, so no two workers ever call a provider for one job."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from studio import health
from studio.jobs import ratelimit, steps
from studio.jobs.states import claim_many, expire_overdue
from studio.models import Job, JobState
from studio.outbound import workers as webhook_workers
from studio.providers import PROVIDERS
from studio.providers.base import Provider

S = JobState
log = logging.getLogger(__name__)
CLAIM_BATCH = 200
POLL_GROUP = 16  # jobs one work item polls when the provider has no account limit
POLL_LEASE = timedelta(seconds=60)  # longer than any poll request may take
BATCH_FILL_AHEAD = 0.25  # share of the pace a batched poll may come early to fill its request
WAITING_FOR_SLOT = "Waiting for a provider slot."
EXPIRY_EVERY = timedelta(seconds=5)


def _due(provider: Provider, state: str, now: datetime):
    rows = Job.objects.filter(provider=provider.key, state=state, next_poll_at__lte=now)
    return rows.select_for_update(skip_locked=True).order_by("next_poll_at")


def claim_submissions(provider: Provider, now: datetime, limit: int = CLAIM_BATCH) -> list:
    """Queued jobs → SUBMITTING, as many as the account's in-flight limit and tokens allow."""
    if provider.unavailable_reason():
        return []
    fingerprint = provider.key_fingerprint()
    with transaction.atomic():
        ratelimit.account(provider, fingerprint, lock=True)  # one claimer per account at a time
        room = limit
        in_flight_limit = provider.max_in_flight()
        if in_flight_limit is not None:
            in_flight = Job.objects.filter(
                provider=provider.key,
                key_fingerprint=fingerprint,
                state__in=[S.SUBMITTING, S.RUNNING],
                output_ref="",
            ).count()
            room = min(room, in_flight_limit - in_flight)
        due = list(_due(provider, S.QUEUED, now).values_list("pk", flat=True)[: max(room, 0)])
        granted = ratelimit.take(provider, fingerprint, len(due))  # timed as granted
        ids = due[:granted]
        if ids:
            lease = timedelta(seconds=provider.submit_timeout) + timedelta(seconds=30)
            claim_many(
                ids,
                S.QUEUED,
                S.SUBMITTING,
                submit_attempts=F("submit_attempts") + 1,
                key_fingerprint=fingerprint,
                next_poll_at=now + lease,
                status_note="",
            )
        if in_flight_limit is not None and room <= 0:
            Job.objects.filter(
                provider=provider.key, state=S.QUEUED, next_poll_at__lte=now
            ).exclude(status_note=WAITING_FOR_SLOT).update(status_note=WAITING_FOR_SLOT)
    return [partial(steps.submit, provider, pk) for pk in ids]


def claim_stale_submissions(provider: Provider, now: datetime, limit: int = CLAIM_BATCH) -> list:
    with transaction.atomic():
        ids = list(_due(provider, S.SUBMITTING, now).values_list("pk", flat=True)[:limit])
        Job.objects.filter(pk__in=ids).update(next_poll_at=now + POLL_LEASE)
    return [partial(steps.resolve_stale_submission, provider, pk) for pk in ids]


def claim_polls(provider: Provider, now: datetime, limit: int = CLAIM_BATCH) -> list:
    """Running jobs that are due: outputs to copy, and polls within each account's tokens,
    earliest due first, so every job gets its fair share and none is starved. The claimed rows
    travel with the work, so a poll does not read them again."""
    # A provider with an account limit gets one request per work item, claimed only as threads
    # are free: its tokens are spent within moments of being granted. Without a limit, a work
    # item polls several jobs and records them in one write. `limit` counts work items.
    size = provider.batch_size if provider.rate_limit else provider.batch_size * POLL_GROUP
    with transaction.atomic():
        rows = list(_due(provider, S.RUNNING, now).defer("last_response")[: limit * size])
        rows += _batch_fillers(provider, now, rows)
        collect = [job.pk for job in rows if job.output_ref]
        by_account = defaultdict(list)
        for job in rows:
            if not job.output_ref:
                by_account[job.key_fingerprint].append(job)
        batches = []
        for fingerprint, jobs in by_account.items():
            chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
            requests = [math.ceil(len(chunk) / provider.batch_size) for chunk in chunks]
            granted = ratelimit.take(provider, fingerprint, sum(requests))  # timed as granted
            while chunks and sum(requests) > granted:
                chunks.pop(), requests.pop()
            batches += chunks
        polled = [job.pk for chunk in batches for job in chunk]
        Job.objects.filter(pk__in=polled).update(next_poll_at=now + POLL_LEASE)
        Job.objects.filter(pk__in=collect).update(next_poll_at=now + steps.COLLECT_LEASE)
    work = [partial(steps.poll, provider, chunk) for chunk in batches]
    return work + [partial(steps.collect_later, pk) for pk in collect]


def _batch_fillers(provider: Provider, now: datetime, due: list[Job]) -> list[Job]:
    """Where one request answers for many jobs (AKOOL), jobs falling due within the next
    BATCH_FILL_AHEAD of the pace ride along in a request that is going out anyway, rather than
    each needing a request of its own moments later. Never a job backing off after an error,
    nor one polled less than the provider's minimum spacing ago."""
    room = -len(due) % provider.batch_size
    if provider.batch_size == 1 or not due or not room:
        return []
    ahead = provider.pace * BATCH_FILL_AHEAD
    spaced = now - provider.figure(provider.min_poll_interval)
    rows = Job.objects.filter(
        Q(last_polled_at__lte=spaced) | Q(last_polled_at__isnull=True, running_at__lte=spaced),
        provider=provider.key,
        state=S.RUNNING,
        output_ref="",
        transient_errors=0,
        next_poll_at__gt=now,
        next_poll_at__lte=now + ahead,
    )
    rows = rows.select_for_update(skip_locked=True).order_by("next_poll_at")
    return list(rows.defer("last_response")[:room])


CLAIMS = {
    S.SUBMITTING: claim_stale_submissions,
    S.QUEUED: claim_submissions,
    S.RUNNING: claim_polls,
}


def claim_due(now: datetime | None = None, limit: int = CLAIM_BATCH) -> list:
    """One cheap read finds which providers have due rows in which state; only those are
    claimed, so an idle engine costs one indexed query a tick and takes no lock."""
    now = now or timezone.now()
    due = set(
        Job.objects.filter(state__in=list(CLAIMS), next_poll_at__lte=now)
        .order_by()
        .values_list("provider", "state")
        .distinct()
    )
    work = []
    for provider in PROVIDERS.values():
        for state, claim in CLAIMS.items():
            if (provider.key, state) in due and len(work) < limit:
                work += claim(provider, now, limit - len(work))
    return work


def _run(item) -> None:
    try:
        item()
    except Exception:  # one job's failure never stops the engine; the row stays due
        log.exception("job engine step %s failed", getattr(item, "func", item))


def tick(now: datetime | None = None, seconds: float | None = None) -> int:
    """Do everything due in this thread (the nudge and sweep tasks, tests): one work item claimed
    at a time, then done, then the next. Claiming a batch and sending it one by one would leave
    every claimed job on record as sent-or-not while it waits, and a worker killed meanwhile
    (or a task past its time limit) would fail them all unsent, as outcomes unknown.

    `seconds` (default half of TASK_TIME_LIMIT) bounds how long new work is claimed for: the
    engine loop and the next tick take the rest."""
    budget = settings.TASK_TIME_LIMIT / 2 if seconds is None else seconds
    stop_at = time.monotonic() + budget
    now = now or timezone.now()  # what was due when the tick began; the loop takes what is newer
    done = 0
    while done < CLAIM_BATCH and time.monotonic() < stop_at:
        work = claim_due(now, limit=1)
        if not work:
            break
        for item in work:
            _run(item)
        done += len(work)
    return done


class Engine:
    """The long-running loop of `manage.py run_engine`: ticks several times a second, runs the
    provider calls in a thread pool, expires overdue jobs every few seconds, and sends webhook
    deliveries as they fall due."""

    def __init__(self, threads: int = 8, idle_sleep: float = 0.2, stop_seconds: float = 30.0):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="engine")
        self.threads = threads
        self.idle_sleep = idle_sleep
        self.stopping = threading.Event()
        self.stop_seconds = stop_seconds  # longest wait for the calls in flight once stopping
        self.stop_now = threading.Event()  # asked twice: wait for nothing
        # Work is claimed only for free threads, so a claimed job (and its rate-limit token) is
        # sent within moments, never after a queue of others.
        self.free = threads
        self.free_lock = threading.Lock()
        self._next_expiry = timezone.now()
        self._next_beat = 0.0
        # Webhook deliveries get threads of their own: a slow receiver never holds a provider call.
        self.webhooks = webhook_workers.Sender()

    def run(self) -> bool:
        log.info("job engine running with %d threads", self.threads)
        webhook_workers.run_locally(
            self.webhooks
        )  # events recorded here wake it, not a worker task
        while not self.stopping.is_set():
            self.beat()
            try:
                claimed = self.tick_once()
            except Exception:
                log.exception("job engine tick failed")
                connection.close()
                claimed = 0
            if not claimed:
                self.stopping.wait(self.idle_sleep if self.free else 0.005)
        webhook_workers.run_locally(None)
        finished = self.finish_calls()
        log.info("job engine stopped")
        return finished

    def finish_calls(self) -> bool:
        """Claims nothing more; waits for the provider calls and webhook sends in flight, at most
        `stop_seconds` (or not at all once asked to stop twice). False if some were still running:
        they are abandoned, and their rows' leases hand them to the next engine, as after a crash
        (the caller must then exit without waiting for their threads)."""
        self.pool.shutdown(wait=False)
        self.webhooks.shutdown(wait=False)
        give_up_at = time.monotonic() + self.stop_seconds
        while True:
            with self.free_lock:
                calls = self.threads - self.free
            sends = self.webhooks.in_flight()
            if not calls and not sends:
                return True
            if self.stop_now.is_set() or time.monotonic() >= give_up_at:
                log.warning(
                    "job engine stopping with %d provider calls and %d webhook sends in flight: "
                    "their leases hand them on",
                    calls,
                    sends,
                )
                return False
            self.stop_now.wait(0.05)

    def beat(self) -> None:
        """The loop is alive: a heartbeat in the shared cache every few seconds, read by
        /readyz (studio.health). A failed write is logged, never fatal."""
        now = time.monotonic()
        if now < self._next_beat:
            return
        self._next_beat = now + health.ENGINE_BEAT_EVERY
        try:
            health.beat_engine()
        except Exception:
            log.exception("could not write the job engine's heartbeat")

    def tick_once(self) -> int:
        now = timezone.now()
        if now >= self._next_expiry:
            expire_overdue(now)
            self._next_expiry = now + EXPIRY_EVERY
        self.webhooks.tick(now)  # due retries go out within a second, not at the next sweep
        with self.free_lock:
            free = self.free
        if free <= 0:
            return 0
        work = claim_due(now, limit=free)
        with self.free_lock:
            self.free -= len(work)
        for item in work:
            self.pool.submit(self._guarded, item)
        return len(work)

    def _guarded(self, item) -> None:
        try:
            _run(item)
        finally:
            close_old_connections()  # a pool thread keeps no broken or stale connection
            with self.free_lock:
                self.free += 1

    def stop(self, *_args) -> None:
        """Stop claiming and finish what is in flight (run_engine's SIGTERM or SIGINT); asked
        again, stop waiting for it."""
        if self.stopping.is_set():
            self.stop_now.set()
        self.stopping.set()
