"""Sending webhook deliveries, from the workers only (never in a web request).

A delivery is claimed by one conditional UPDATE that moves it to SENDING with a lease: its
`next_attempt_at` becomes the lease's end, so a sender killed mid-send leaves a row that falls
due again by itself and is sent once more under the same `webhook-id` (at least once; receivers
drop repeats by that id). Every claim adds one to `attempts`, which then fences the result: only
the claim that is still current records a failure, while a 2xx from any attempt marks the
delivery delivered, after which nothing claims it again.

Claims go endpoint by endpoint, at most PER_ENDPOINT in flight to each, with the endpoint's row
locked (SKIP LOCKED) while its claim is counted: one slow receiver holds a few threads, never
all of them, and other teams' deliveries keep going."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from studio import public_urls
from studio.models import DeliveryState, WebhookDelivery, WebhookEndpoint
from studio.outbound import health
from studio.outbound.endpoints import NOT_SENT_DISABLED

D = DeliveryState
log = logging.getLogger(__name__)
# Standard Webhooks' suggested schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and
# 10 h after each failure: eight attempts over about 27.6 hours.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
PER_ENDPOINT = 4  # deliveries in flight to one endpoint at once
CLAIM_LIMIT = 100
LEASE_MARGIN = timedelta(seconds=30)  # beyond the request's own overall deadline
USER_AGENT = "Studio-Webhooks/1"


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempt: int  # `attempts` as this claim set it


def _lease_end(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS) + LEASE_MARGIN


def _due(now: datetime):
    # Pending and due, or SENDING with its lease run out: both are just `next_attempt_at <= now`
    # on the partial index webhook_delivery_due.
    return WebhookDelivery.objects.filter(
        state__in=[D.PENDING, D.SENDING], next_attempt_at__lte=now
    )


def any_due(now: datetime | None = None) -> bool:
    return _due(now or timezone.now()).filter(endpoint__enabled=True).exists()


def claim_due(now: datetime | None = None, limit: int = CLAIM_LIMIT) -> list[Claim]:
    """Claim up to `limit` due deliveries, a few per endpoint, endpoints in random order."""
    now = now or timezone.now()
    due = _due(now).filter(endpoint__enabled=True).order_by()
    endpoint_ids = list(due.values_list("endpoint_id", flat=True).distinct())
    random.shuffle(endpoint_ids)  # no endpoint is always served last
    claims: list[Claim] = []
    for endpoint_id in endpoint_ids:
        if len(claims) >= limit:
            break
        claims += _claim_for_endpoint(endpoint_id, now, limit - len(claims))
    return claims


def _claim_for_endpoint(endpoint_id: int, now: datetime, limit: int) -> list[Claim]:
    with transaction.atomic():
        # NO KEY: new deliveries (which take KEY SHARE on their endpoint) are not held up.
        locked = WebhookEndpoint.objects.select_for_update(no_key=True, skip_locked=True)
        if not locked.filter(pk=endpoint_id, enabled=True).exists():
            return []  # disabled, or another sender is claiming for it right now
        mine = WebhookDelivery.objects.filter(endpoint_id=endpoint_id)
        in_flight = mine.filter(state=D.SENDING, next_attempt_at__gt=now).count()
        room = min(limit, PER_ENDPOINT - in_flight)
        if room <= 0:
            return []
        ids = list(
            _due(now)
            .filter(endpoint_id=endpoint_id)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:room]
        )
        lease = _lease_end(now)
        # Conditional again: a result recorded since the read above (a late 2xx) wins.
        _due(now).filter(pk__in=ids).update(
            state=D.SENDING,
            attempts=F("attempts") + 1,
            next_attempt_at=lease,
            claimed_until=lease,
            last_attempt_at=now,
        )
        claimed = mine.filter(pk__in=ids, state=D.SENDING, claimed_until=lease)
        return [Claim(pk, attempt) for pk, attempt in claimed.values_list("pk", "attempts")]


def signed_headers(secret: str, message_id: str, sent_at: datetime, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, sent_at, body),
    }


def send(claim: Claim, now: datetime | None = None) -> str | None:
    """Make one claimed attempt and record it; returns the delivery's state after it. `now` is
    the clock for the schedule (tests move it); the signature always carries the real time."""
    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=claim.delivery_id, state=D.SENDING, attempts=claim.attempt)
        .first()
    )
    if delivery is None:
        return None  # deleted, or a newer claim has it
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        _record_failure(delivery, claim, None, NOT_SENT_DISABLED, now, final=True)
        return D.FAILED
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)
    sent_at = timezone.now()
    headers = signed_headers(endpoint.secret, delivery.message_id, sent_at, body)
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    code, error = None, ""
    try:
        answer = public_urls.post(
            endpoint.url, content=body.encode(), headers=headers, timeout=timeout
        )
    except public_urls.UrlRefused as refused:
        error = str(refused)
    except httpx.TimeoutException:
        error = f"No answer within {timeout} seconds."
    except httpx.ConnectError:
        error = "Could not connect to the endpoint."
    except httpx.HTTPError as failed:  # never the message: it may quote the request
        error = f"The exchange failed ({type(failed).__name__})."
    except Exception:  # our fault, not the receiver's: recorded, so the schedule still ends
        log.exception("webhook delivery %s could not be sent", delivery.pk)
        error = "Could not be sent because of an error on our side."
    else:
        code = answer.status_code
        if answer.is_success:
            _record_success(delivery, code, now)
            return D.DELIVERED
        error = _describe_answer(answer)
    final = claim.attempt >= MAX_ATTEMPTS
    _record_failure(delivery, claim, code, error, now, final=final)
    return D.FAILED if final else D.PENDING


def _describe_answer(answer: httpx.Response) -> str:
    """What the receiver said, short and printable (it is shown on the delivery log)."""
    text = " ".join(answer.content[:400].decode("utf-8", "replace").split())
    text = "".join(c for c in text if c.isprintable())
    said = f": {text[:200]}" if text else ""
    if answer.is_redirect:
        said = " (a redirect: webhooks do not follow them; register the final URL)"
    return f"Answered {answer.status_code}{said}"[:300]


def _record_success(delivery: WebhookDelivery, code: int, now: datetime | None) -> None:
    now = now or timezone.now()
    with transaction.atomic():
        # Whatever claim made it: a 2xx ends the delivery, and nothing claims it again.
        WebhookDelivery.objects.filter(pk=delivery.pk).exclude(state=D.DELIVERED).update(
            state=D.DELIVERED,
            delivered_at=now,
            last_status_code=code,
            last_error="",
            next_attempt_at=None,
            claimed_until=None,
        )
        health.endpoint_answered(delivery.endpoint_id)


def _record_failure(delivery, claim: Claim, code, error: str, now, *, final: bool) -> None:
    now = now or timezone.now()
    recorded = WebhookDelivery.objects.filter(
        pk=delivery.pk, state=D.SENDING, attempts=claim.attempt
    ).update(
        state=D.FAILED if final else D.PENDING,
        next_attempt_at=None if final else now + RETRY_DELAYS[claim.attempt - 1],
        claimed_until=None,
        last_status_code=code,
        last_error=error[:300],
    )
    if recorded and error != NOT_SENT_DISABLED:
        health.endpoint_failed(delivery.endpoint, error, now)


def send_again(delivery: WebhookDelivery, now: datetime | None = None) -> bool:
    """A delivered or failed delivery goes out again as the same message (same `webhook-id`),
    with a fresh schedule of attempts. False if it is still being delivered or the endpoint is
    disabled."""
    from studio.outbound.events import nudge

    now = now or timezone.now()
    with transaction.atomic():
        again = WebhookDelivery.objects.filter(
            pk=delivery.pk, state__in=[D.DELIVERED, D.FAILED], endpoint__enabled=True
        ).update(
            state=D.PENDING,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            delivered_at=None,
        )
        if again:
            transaction.on_commit(nudge, robust=True)
    return bool(again)
