"""What the job engine does with a claimed job: submit it, poll it, reconcile a submission whose
answer never came, and record what the provider said. Every write is a compare-and-set on the
job's state, so a late or duplicated answer changes nothing."""

from __future__ import annotations

import json
import logging
import random
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from studio.jobs import ratelimit
from studio.jobs.states import transition
from studio.models import IncidentKind, Job, JobState, ProviderIncident
from studio.providers.base import (
    OutcomeUnknown,
    Provider,
    ProviderError,
    Status,
    Submitted,
)

S = JobState
log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(minutes=5)
# How long a claimed output copy may take before the engine hands it out again: a task runs at
# most Q_TIMEOUT once a worker has it, plus a minute in the queue. A copy whose task was lost with
# a killed worker (Redis hands a task out once) is re-sent after this; two copies of one output
# are harmless (the second loses the move to SUCCEEDED and deletes what it stored).
COLLECT_LEASE = timedelta(seconds=settings.Q_TIMEOUT + 60)


def submit(provider: Provider, job_id) -> None:
    """Send a job the engine has moved to SUBMITTING (that move is committed: the attempt is on
    record before the provider hears of it)."""
    job = Job.objects.filter(pk=job_id, state=S.SUBMITTING).first()
    if job is None:
        return
    try:
        provider.prepare_input(job)
        submitted = provider.submit(job)
    except OutcomeUnknown as unknown:
        outcome_unknown(provider, job, str(unknown))
    except ProviderError as error:
        if error.permanent:
            transition(job, S.SUBMITTING, S.FAILED, error=str(error))
        else:
            retry_later(provider, job, error, S.SUBMITTING, back_to=S.QUEUED)
    except Exception:
        # Our own bug, before or after the request went out: we cannot tell which, so the job is
        # treated like a lost answer and never sent again.
        log.exception("submitting job %s to %s failed unexpectedly", job.pk, provider.key)
        outcome_unknown(provider, job, f"{provider.label}: an internal error while sending")
    else:
        if submitted is not None:  # None: the adapter's own worker moves the job (local engine)
            record_submitted(provider, job, submitted)


def record_submitted(provider: Provider, job: Job, submitted: Submitted) -> None:
    now = timezone.now()
    won = transition(
        job,
        S.SUBMITTING,
        S.RUNNING,
        provider_job_id=submitted.provider_job_id,
        deadline_at=now + provider.figure(provider.deadline_for(job)),
        next_poll_at=now + provider.pace,
        transient_errors=0,
        status_note="",
        claimed_provider_id="",
    )
    if won and submitted.status is not None:
        apply(provider, job, submitted.status, now)


def poll(provider: Provider, jobs: list[Job]) -> None:
    """Poll jobs the engine claimed (their rows came with the claim), one request per
    `batch_size` of them; the ones still running are recorded in one write."""
    jobs = _refuse_other_keys(provider, jobs)
    still_running = []
    for start in range(0, len(jobs), provider.batch_size):
        chunk = jobs[start : start + provider.batch_size]
        try:
            results = provider.poll(chunk)
        except ProviderError as error:
            results = {job.pk: error for job in chunk}
        except Exception:
            log.exception("polling %s failed unexpectedly", provider.key)
            error = ProviderError(
                f"{provider.label}: an internal error while checking", permanent=False
            )
            results = {job.pk: error for job in chunk}
        # The provider spaces polls by when it saw them: count from its answer, not our send.
        answered = timezone.now()
        for job in chunk:
            missing = ProviderError(f"{provider.label} said nothing of this job.", permanent=False)
            result = results.get(job.pk, missing)
            if isinstance(result, Status) and result.state == "running":
                still_running.append(_seen_running(provider, job, result, answered))
            else:
                apply(provider, job, result, answered)
    if still_running:
        record_running(still_running)


def _refuse_other_keys(provider: Provider, jobs: list[Job]) -> list[Job]:
    """Only the key that started a job may collect it: jobs of another key fail (refunded)."""
    fingerprint = provider.key_fingerprint()
    kept = []
    for job in jobs:
        if not provider.remote or job.key_fingerprint == fingerprint:
            kept.append(job)
            continue
        _record_incident(job, IncidentKind.KEY_MISMATCH, "polled key differs from submitting key")
        transition(
            job,
            S.RUNNING,
            S.FAILED,
            error=f"The {provider.label} key changed while this job ran, and only the key that "
            "started a job may collect it. Your credits were returned.",
        )
    return kept


RUNNING_FIELDS = [
    "last_polled_at",
    "poll_attempts",
    "transient_errors",
    "status_note",
    "last_response",
    "provider_credits_used",
    "progress",
    "eta_at",
    "next_poll_at",
]


# One statement for a whole group of polled jobs, on PostgreSQL. The engine writes this for every
# poll, thousands a minute: Django's bulk_update compiles a CASE per field and row, which cost the
# engine more than the HTTP requests themselves (bench/provider_capacity.py, profiled).
_RECORD_RUNNING = """
UPDATE studio_job AS j SET
    last_polled_at = v.polled, poll_attempts = j.poll_attempts + 1, transient_errors = 0,
    status_note = '', last_response = v.answer::jsonb,
    provider_credits_used = COALESCE(v.cost, j.provider_credits_used),
    progress = COALESCE(v.progress, j.progress), eta_at = COALESCE(v.eta, j.eta_at),
    next_poll_at = v.due
FROM (VALUES {rows}) AS v(id, polled, answer, cost, progress, eta, due)
WHERE j.id = v.id AND j.state = 'running'
"""
_VALUES_ROW = (
    "(%s::uuid, %s::timestamptz, %s, %s::float8, %s::int, %s::timestamptz, %s::timestamptz)"
)


def record_running(jobs: list[Job]) -> None:
    """Write what polls saw of jobs still running, only where they still are running."""
    if connection.vendor != "postgresql":
        for job in jobs:
            fields = {name: getattr(job, name) for name in RUNNING_FIELDS}
            Job.objects.filter(pk=job.pk, state=S.RUNNING).update(**fields)
        return
    params = []
    for job in jobs:
        answer = json.dumps(job.last_response, cls=DjangoJSONEncoder)
        cost = job.provider_credits_used
        params += [job.pk, job.last_polled_at, answer, cost, job.progress, job.eta_at]
        params.append(job.next_poll_at)
    sql = _RECORD_RUNNING.format(rows=", ".join([_VALUES_ROW] * len(jobs)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _seen_running(provider: Provider, job: Job, status: Status, answered) -> Job:
    """The job as this answer leaves it (written by the caller, only if it is still running)."""
    job.last_polled_at = answered
    job.poll_attempts = F("poll_attempts") + 1
    job.transient_errors = 0
    job.status_note = ""
    job.last_response = status.answer
    if status.cost is not None:
        job.provider_credits_used = status.cost
    if status.progress is not None:
        job.progress = max(0, min(99, status.progress))
    if status.eta_seconds is not None:
        job.eta_at = answered + provider.figure(timedelta(seconds=max(0.0, status.eta_seconds)))
    job.next_poll_at = answered + provider.pace
    return job


def apply(provider: Provider, job: Job, result: Status | ProviderError, sent_at) -> None:
    """Record one answer about a RUNNING job."""
    if isinstance(result, ProviderError):
        if result.permanent:
            transition(job, S.RUNNING, S.FAILED, error=str(result), last_polled_at=sent_at)
        else:
            retry_later(provider, job, result, S.RUNNING, polled_at=sent_at)
        return
    if result.state == "running":
        seen = _seen_running(provider, job, result, sent_at)
        fields = {name: getattr(seen, name) for name in RUNNING_FIELDS}
        Job.objects.filter(pk=job.pk, state=S.RUNNING).update(**fields)
        return
    seen = {
        "last_polled_at": sent_at,
        "poll_attempts": F("poll_attempts") + 1,
        "transient_errors": 0,
        "status_note": "",
        "last_response": result.answer,
    }
    if result.cost is not None:
        seen["provider_credits_used"] = result.cost
    if result.state == "failed":
        message = result.message or f"{provider.label} could not make this video."
        if transition(job, S.RUNNING, S.FAILED, error=message, **seen) and result.probably_charged:
            _record_incident(job, IncidentKind.FILTERED_CHARGED, message)
    else:
        output_ready(provider, job, result, seen)


def output_ready(provider: Provider, job: Job, status: Status, seen: dict) -> None:
    """The provider is done: note where its output is, then hand the copy to a worker. Credits
    are captured only once our copy exists (studio.jobs.outputs)."""
    now = timezone.now()
    ref = status.output_url
    if status.output_path:  # already streamed to a temporary file: keep it in our storage
        path = Path(status.output_path)
        with path.open("rb") as handle:
            name = default_storage.save(
                f"provider-outputs/{job.team_id}/{job.pk.hex}.{status.output_format}", File(handle)
            )
        path.unlink(missing_ok=True)
        ref = f"stored:{name}"
    if not ref:
        apply(provider, job, ProviderError("finished without a video", permanent=False), now)
        return
    updated = Job.objects.filter(pk=job.pk, state=S.RUNNING, output_ref="").update(
        output_ref=ref,
        output_format=status.output_format,
        output_expires_at=now + provider.figure(provider.output_retention),
        next_poll_at=now + COLLECT_LEASE,
        progress=99,
        **seen,
    )
    if updated:
        start_collecting(job.pk)


def start_collecting(job_id) -> None:
    transaction.on_commit(lambda: collect_later(job_id))


def collect_later(job_id) -> None:
    """Copy the output on a worker (the engine re-sends this if the task is lost)."""
    async_task("studio.tasks.collect_output", str(job_id), group="outputs")


def retry_later(provider, job, error: ProviderError, source, *, back_to=None, polled_at=None):
    """A transient failure: wait (longer each time, with jitter, at least the provider's hint)
    and try again; the job's deadline still stands."""
    now = timezone.now()
    base = provider.figure(provider.min_poll_interval)
    delay = min(MAX_BACKOFF, base * (2 ** min(job.transient_errors, 10)))
    delay = delay * random.uniform(0.5, 1.0) + base * 0.5
    if error.rate_limited:
        ratelimit.pause(provider, job.key_fingerprint, error.retry_after, str(error))
        delay = max(delay, timedelta(seconds=error.retry_after))
    else:
        ratelimit.note_error(provider, job.key_fingerprint, str(error))
    fields = {
        "next_poll_at": now + delay,
        "transient_errors": F("transient_errors") + 1,
        "status_note": f"{error} Trying again.",
    }
    if polled_at is not None:
        fields["last_polled_at"] = polled_at
    if back_to is not None:
        transition(job, source, back_to, **fields)
    else:
        Job.objects.filter(pk=job.pk, state=source).update(**fields)


def outcome_unknown(provider: Provider, job: Job, detail: str) -> None:
    """A submission may have reached the provider, but we never learnt its id. It is never sent
    again: staff are told, and the job waits for the provider to name it (where it can)."""
    now = timezone.now()
    if provider.resend_safe:  # our own engine: nothing was spent, simply queue it again
        transition(job, S.SUBMITTING, S.QUEUED, next_poll_at=now, status_note="")
        return
    _record_incident(job, IncidentKind.OUTCOME_UNKNOWN, detail)
    if not provider.reconcilable(job):
        transition(
            job,
            S.SUBMITTING,
            S.FAILED,
            outcome_unknown_at=now,
            error=f"We could not confirm that {provider.label} received this job, so it was "
            "stopped rather than risk sending it twice. Your credits were returned.",
        )
        return
    deadline = now + provider.figure(provider.deadline_for(job))
    waiting = Job.objects.filter(pk=job.pk, state=S.SUBMITTING)
    waiting.update(
        outcome_unknown_at=now,
        deadline_at=deadline,
        next_poll_at=deadline,
        status_note=f"Waiting for {provider.label} to confirm it received this job.",
    )
    # The provider's callback may have named the job while our request still waited for its
    # answer: confirm that claim now rather than at the deadline.
    waiting.exclude(claimed_provider_id="").update(next_poll_at=now)


def resolve_stale_submission(provider: Provider, job_id) -> None:
    """A SUBMITTING job whose lease ran out: its worker died mid-submit, or it waits for the
    provider to name it, or a callback has named it and a poll must confirm."""
    job = Job.objects.filter(pk=job_id, state=S.SUBMITTING).first()
    if job is None:
        return
    now = timezone.now()
    if job.claimed_provider_id:
        _confirm_claimed_id(provider, job, now)
    elif job.outcome_unknown_at is None:
        outcome_unknown(provider, job, "the worker stopped while sending this job")
    elif job.deadline_at and now >= job.deadline_at:
        transition(
            job,
            S.SUBMITTING,
            S.FAILED,
            error=f"{provider.label} never confirmed receiving this job. Your credits were "
            "returned.",
        )
    else:
        Job.objects.filter(pk=job.pk, state=S.SUBMITTING).update(next_poll_at=job.deadline_at)


def _confirm_claimed_id(provider: Provider, job: Job, now) -> None:
    claimed = job.claimed_provider_id
    job.provider_job_id = claimed
    try:
        status = provider.poll([job])[job.pk]
    except ProviderError as error:
        status = error
    if isinstance(status, ProviderError):
        if status.permanent:  # the provider does not know that id: the claim was false
            log.warning("callback for job %s named unknown id %r", job.pk, claimed)
            Job.objects.filter(pk=job.pk, state=S.SUBMITTING).update(
                claimed_provider_id="", next_poll_at=job.deadline_at or now
            )
        else:
            Job.objects.filter(pk=job.pk, state=S.SUBMITTING).update(
                next_poll_at=now + provider.figure(provider.min_poll_interval)
            )
        return
    log.info("job %s reconciled with %s id %s", job.pk, provider.key, claimed)
    record_submitted(provider, job, Submitted(claimed, status=status))


def _record_incident(job: Job, kind: str, detail: str) -> None:
    try:
        with transaction.atomic():
            ProviderIncident.objects.get_or_create(
                job=job, kind=kind, defaults={"provider": job.provider, "detail": detail[:300]}
            )
    except IntegrityError:
        pass
