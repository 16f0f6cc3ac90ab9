"""Inbound provider callbacks. Each job has its own callback URL with an unguessable token. A
callback only wakes its job: the next poll (which honours the provider's spacing) decides what
changed, so duplicated, late, out-of-order and forged callbacks change nothing by themselves."""

import logging
import re

from django.conf import settings
from django.http import JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from studio.models import Job, JobState
from studio.providers import PROVIDERS
from studio.providers.base import Provider, WebhookHint, WebhookRejected

S = JobState
log = logging.getLogger(__name__)
MAX_CALLBACK_BYTES = 64 * 1024
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # secrets.token_urlsafe's alphabet


def callback_url(job: Job) -> str:
    return settings.PUBLIC_BASE_URL + reverse(
        "provider_callback", args=[job.provider, job.webhook_token]
    )


def _answer(status: int, message: str = "") -> JsonResponse:
    return JsonResponse(
        {"ok": status == 200} | ({"error": message} if message else {}), status=status
    )


@csrf_exempt
@require_POST
def provider_callback(request, provider_key: str, token: str):
    provider = PROVIDERS.get(provider_key)
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = MAX_CALLBACK_BYTES + 1
    if length > MAX_CALLBACK_BYTES:
        return _answer(413, f"A callback body must be at most {MAX_CALLBACK_BYTES} bytes.")
    job = None
    if provider is not None and TOKEN_SHAPE.fullmatch(token):  # no NUL or surrogate to the DB
        job = Job.objects.filter(provider=provider_key, webhook_token=token).first()
    if job is None:
        log.warning("callback for an unknown job (%s)", provider_key[:32])
        return _answer(404, "No such job.")
    try:
        hint = provider.parse_webhook(job, request.body, request.headers)
    except WebhookRejected as refused:
        log.warning("callback for job %s refused: %s", job.pk, refused)
        return _answer(400, str(refused))
    woken = wake(provider, job, hint)
    log.info("callback for job %s (%s, %s): %s", job.pk, job.state, hint.note, woken or "no change")
    return _answer(200)


def wake(provider: Provider, job: Job, hint: WebhookHint) -> str:
    """Bring the job's next look forward, never closer to the last poll than the provider allows,
    and never while a poll or submission holds it (its lease is further out than one interval)."""
    now = timezone.now()
    interval = provider.figure(provider.min_poll_interval)
    active = Job.objects.filter(pk=job.pk)
    if not hint.wake:
        if hint.progress is None or job.state != S.RUNNING:
            return ""
        progress = max(0, min(99, hint.progress))
        moved = active.filter(state=S.RUNNING, progress__lt=progress).update(progress=progress)
        return "progress noted" if moved else ""
    if job.state == S.SUBMITTING:
        if not hint.provider_job_id:
            return ""
        claimed = active.filter(state=S.SUBMITTING, claimed_provider_id="").update(
            claimed_provider_id=hint.provider_job_id[:255]
        )
        # Only a job already waiting for reconciliation is pulled in; one mid-submit keeps its
        # lease, and its own answer clears the claim.
        active.filter(state=S.SUBMITTING, outcome_unknown_at__isnull=False).update(next_poll_at=now)
        return "claimed an id" if claimed else ""
    if job.state == S.RUNNING and not job.output_ref:
        due = max(now, (job.last_polled_at or now) + interval)
        pulled = active.filter(
            state=S.RUNNING,
            output_ref="",
            next_poll_at__gt=due,
            next_poll_at__lte=now + provider.pace,
        ).update(next_poll_at=due)
        return "poll brought forward" if pulled else ""
    return ""
