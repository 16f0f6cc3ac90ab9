"""Deleting a finished video: our copy goes at once; where the provider keeps one we can delete
(AKOOL's delbyids) the provider's copy follows through a worker, retried while the provider
says the video is still processing. The job row and its ledger rows stay: money already moved
is history, not content."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from studio.models import Job, JobState, Membership
from studio.providers import PROVIDERS
from studio.providers.base import ProviderError

log = logging.getLogger(__name__)
CLAIM_LEASE = timedelta(minutes=5)  # longer than one delete request may take
BUSY_RETRY = timedelta(minutes=1)  # a video still processing at the provider: ask again later
ERROR_RETRY = timedelta(minutes=10)
CLAIM_BATCH = 200


class DeleteRefused(ValueError):
    pass


def may_delete(membership: Membership, job: Job) -> bool:
    return membership.can_submit and (job.creator_id == membership.user_id or membership.can_manage)


def delete_video(membership: Membership, job: Job) -> bool:
    """Remove the job's video from our storage and schedule the provider's copy for deletion.
    False if it was already deleted."""
    if not may_delete(membership, job):
        raise PermissionDenied("Only whoever made the video, or an admin or owner, can delete it.")
    if not job.is_terminal:
        raise DeleteRefused("This job is still running: cancel it or wait for it to finish.")
    provider = PROVIDERS.get(job.provider)
    remote = (
        provider is not None
        and provider.deletes_remote
        and job.state == JobState.SUCCEEDED
        and bool(job.provider_job_id)
    )
    now = timezone.now()
    files = [f for f in (job.video, job.poster, job.original_output) if f]
    with transaction.atomic():
        deleted = Job.objects.filter(pk=job.pk, deleted_at__isnull=True).update(
            deleted_at=now,
            video="",
            poster="",
            original_output="",
            provider_delete_due_at=now if remote else None,
        )
        if not deleted:
            return False
        names = [f.name for f in files]
        transaction.on_commit(lambda: _remove_files(job, names))
        if remote:
            transaction.on_commit(
                lambda: async_task("studio.tasks.delete_provider_copies", group="deletes")
            )
    return True


def _remove_files(job: Job, names: list[str]) -> None:
    storage = job.video.storage
    for name in names:
        try:
            storage.delete(name)  # on local disk or S3 alike; a name already gone is no error
        except Exception:  # the disk or the object store refuses (OSError, botocore's errors):
            # the row no longer points at it, and the member's delete has already succeeded
            log.warning("could not delete %s of job %s", name, job.pk, exc_info=True)


def delete_provider_copies(now=None) -> int:
    """Ask providers to delete the copies that are due; returns how many were settled."""
    now = now or timezone.now()
    settled = 0
    for provider_key, jobs in _claim_due(now).items():
        provider = PROVIDERS[provider_key]
        fingerprint = provider.key_fingerprint()
        foreign = [job for job in jobs if job.key_fingerprint != fingerprint]
        if foreign:  # only the key that made a video may delete it: nothing we can do
            log.warning("%d %s copies made with another key stay", len(foreign), provider_key)
            _update(foreign, provider_delete_due_at=None)
        mine = [job for job in jobs if job.key_fingerprint == fingerprint]
        for start in range(0, len(mine), provider.batch_size):
            settled += _delete_batch(provider, mine[start : start + provider.batch_size], now)
    return settled


def _claim_due(now) -> dict[str, list[Job]]:
    with transaction.atomic():
        due = list(
            Job.objects.filter(provider_delete_due_at__lte=now)
            .select_for_update(skip_locked=True)
            .order_by("provider_delete_due_at")
            .only("pk", "provider", "provider_job_id", "key_fingerprint")[:CLAIM_BATCH]
        )
        _update(due, provider_delete_due_at=now + CLAIM_LEASE)
    grouped: dict[str, list[Job]] = {}
    for job in due:
        if job.provider in PROVIDERS:
            grouped.setdefault(job.provider, []).append(job)
    return grouped


def _delete_batch(provider, jobs: list[Job], now) -> int:
    try:
        outcomes = provider.delete_remote(jobs)
    except ProviderError as error:
        outcomes = {job.pk: error for job in jobs}
    done, busy, errored, failed = [], [], [], []
    for job in jobs:
        outcome = outcomes.get(job.pk)
        if outcome in ("deleted", "gone"):
            done.append(job)
        elif outcome == "busy":
            busy.append(job)
        elif isinstance(outcome, ProviderError) and outcome.permanent:
            log.warning("%s refused to delete job %s: %s", provider.key, job.pk, outcome)
            failed.append(job)
        else:  # a transient error, or nothing said of this job: later
            errored.append(job)
    _update(done, provider_delete_due_at=None, provider_deleted_at=now)
    _update(failed, provider_delete_due_at=None)
    _update(busy, provider_delete_due_at=now + provider.figure(BUSY_RETRY))
    _update(errored, provider_delete_due_at=now + provider.figure(ERROR_RETRY))
    return len(done) + len(failed)


def _update(jobs: list[Job], **fields) -> None:
    if jobs:
        Job.objects.filter(pk__in=[job.pk for job in jobs]).update(**fields)
