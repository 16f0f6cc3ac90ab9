"""django-q2 entry points: thin wrappers that take ids, re-fetch, and return quietly when the
row is gone or already settled (a task may be delivered twice)."""

import logging

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from studio.jobs.states import expire_overdue
from studio.models import Job
from studio.providers import PROVIDERS, get_provider

log = logging.getLogger(__name__)


def enqueue_job(job: Job) -> None:
    """Hand a new job to the workers once the transaction that created it has committed."""
    job_id = str(job.pk)
    transaction.on_commit(lambda: async_task("studio.tasks.run_job", job_id, group="jobs"))


def run_job(job_id: str) -> None:
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return
    get_provider(job.provider).execute(job)


def sweep() -> None:
    """Periodic housekeeping: each provider's sweep, then expire what nobody finished in time."""
    now = timezone.now()
    for provider in PROVIDERS.values():
        moved = provider.sweep(now)
        if moved:
            log.info("%s sweep moved %d jobs", provider.key, moved)
    expired = expire_overdue(now)
    if expired:
        log.info("expired %d overdue jobs", expired)
