"""Recording webhook events where they happen: inside the transaction of the job move or the
warning that caused them (an outbox), so an event exists exactly when its cause committed. The
workers send them afterwards; nothing here makes an HTTP call."""

import json
import logging
import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from studio.models import Job, JobState, WebhookDelivery, WebhookEndpoint
from studio.models import WebhookEvent as E

log = logging.getLogger(__name__)
S = JobState
JOB_EVENTS = {
    S.RUNNING: E.JOB_STARTED,
    S.SUCCEEDED: E.JOB_SUCCEEDED,
    S.FAILED: E.JOB_FAILED,  # the data's "state" says failed or expired
    S.EXPIRED: E.JOB_FAILED,
    S.CANCELED: E.JOB_CANCELED,
}


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def record_job_event(job_id, state: str) -> int:
    """Call inside the transaction that moved the job into `state`. For a team without
    endpoints this costs one indexed query; returns how many deliveries were recorded."""
    event = JOB_EVENTS.get(state)
    if event is None:
        return 0
    team = Subquery(Job.objects.filter(pk=job_id).values("team_id")[:1])
    endpoint_ids = _subscribed(WebhookEndpoint.objects.filter(team_id=team), event)
    if not endpoint_ids:
        return 0
    return _record(endpoint_ids, event, _job_data(job_id))


def record_credits_low(account) -> int:
    """Call inside the transaction that recorded the month's low-balance warning."""
    endpoint_ids = _subscribed(account.team.webhook_endpoints.all(), E.CREDITS_LOW)
    if not endpoint_ids:
        return 0
    data = {
        "team": account.team.slug,
        "available": account.available,
        "low_balance_level": account.low_balance_level,
    }
    return _record(endpoint_ids, E.CREDITS_LOW, data)


def _subscribed(endpoints, event: str) -> list[int]:
    # The event list is filtered here rather than in SQL: JSON containment differs by database,
    # and a team has a handful of endpoints at most.
    rows = endpoints.filter(enabled=True).values_list("pk", "events")
    return [pk for pk, events in rows if event in events]


def _job_data(job_id) -> dict:
    """The API's view of the job. A fault in building it must not undo the job's move (the
    engine would retry the move forever), so the event then carries the essentials only."""
    from studio.api import job_rows
    from studio.api.payloads import job_data

    try:
        with transaction.atomic():  # a savepoint: a failed query leaves the move usable
            return job_data(job_rows.one(job_id))
    except Exception:
        log.exception("webhook payload of job %s fell back to the essentials", job_id)
        job = Job.objects.only("state", "error", "team_id").get(pk=job_id)
        return {"id": job.pk, "state": job.state, "error": job.error}


def _record(endpoint_ids: list[int], event: str, data: dict) -> int:
    now = timezone.now()
    body = {"type": event, "timestamp": now, "data": data}
    # Stored as the JSON it will be sent as: UUIDs and datetimes become strings once, here.
    payload = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint_id=endpoint_id,
            message_id=new_message_id(),
            event=event,
            payload=payload,
            next_attempt_at=now,
        )
        for endpoint_id in endpoint_ids
    )
    transaction.on_commit(nudge, robust=True)  # a broker that is down must not undo the move
    return len(endpoint_ids)


def nudge() -> None:
    """Get due deliveries sent now: by this process's sender if it runs one (the engine loop),
    else by a worker task. Only a nudge: the periodic sweep finds anything it misses."""
    from django_q.tasks import async_task

    from studio.outbound.workers import wake_local_sender

    if not wake_local_sender():
        async_task("studio.tasks.deliver_webhooks", group="webhooks")
