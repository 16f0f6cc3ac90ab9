"""django-q2 entry points: thin wrappers that take ids, re-fetch, and return quietly when the
row is gone or already settled (a task may be delivered twice, or never: the job engine owns
every active row, so a lost task delays a job by a tick at most)."""

import logging

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from studio.jobs import engine
from studio.jobs.states import expire_overdue
from studio.models import Job, JobState

log = logging.getLogger(__name__)


def enqueue_job(job: Job) -> None:
    """Nudge a worker to tick the engine once the job's transaction has committed, so a new job
    starts at once even where no `run_engine` loop is running."""
    transaction.on_commit(lambda: async_task("studio.tasks.nudge", group="engine"))


def nudge() -> None:
    engine.tick()


def render_local(job_id: str) -> None:
    from studio.providers import PROVIDERS

    job = Job.objects.filter(pk=job_id, state=JobState.SUBMITTING).first()
    if job is not None:
        PROVIDERS["local"].render(job)


def collect_output(job_id: str) -> None:
    from studio.jobs.outputs import collect_output as collect

    collect(job_id)


def delete_provider_copies() -> None:
    from studio.jobs.deletion import delete_provider_copies as delete

    delete()


def deliver_webhooks() -> None:
    """Send every webhook delivery that is due, a few threads at once."""
    from studio.outbound.workers import deliver_due

    deliver_due()


def sweep() -> None:
    """Periodic safety net (django-q2's scheduler): one engine tick and expiry, so jobs move even
    if no `run_engine` loop is running; provider copies of deleted videos still due; and webhook
    retries that fell due (a task of their own: a slow receiver must not hold up the sweep); API
    idempotency keys past their keeping time."""
    from studio.api import idempotency
    from studio.jobs import scratch
    from studio.jobs.deletion import delete_provider_copies as delete
    from studio.outbound.delivery import any_due

    now = timezone.now()
    if any_due(now):
        async_task("studio.tasks.deliver_webhooks", group="webhooks")
    moved = engine.tick(now)
    expired = expire_overdue(now)
    deleted = delete(now)
    idempotency.sweep(now)
    scratch.sweep()  # scratch folders of workers killed mid-render or mid-copy
    if moved or expired or deleted:
        log.info("sweep: %d steps, %d expired, %d provider copies deleted", moved, expired, deleted)
