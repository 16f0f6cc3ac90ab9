"""The team's webhook endpoints and their delivery logs, for owners' and admins' tokens (as on
the team settings page): register, list, change events, delete, read the log, send again."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import Query, Router, Schema, Status

from studio.api.auth import writer
from studio.api.bodies import URL, body, fields
from studio.api.errors import answers
from studio.api.job_requests import BadRequest, read_json
from studio.api.pages import DEFAULT_LIMIT, MAX_LIMIT, PageMeta, page
from studio.models import WebhookEndpoint, WebhookEvent
from studio.outbound import delivery, endpoints

router = Router(tags=["webhooks"])


class EndpointOut(Schema):
    id: int
    url: str
    description: str
    events: list[str]
    secret: str  # whsec_…: verify our signatures with it (Standard Webhooks)
    enabled: bool
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str
    created_at: datetime


class DeliveryOut(Schema):
    id: int
    message_id: str  # the webhook-id header: the same on every attempt
    event: str
    state: str
    attempts: int
    last_status_code: int | None
    last_error: str
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict


class DeliveryPage(Schema):
    items: list[DeliveryOut]
    page: PageMeta


ENDPOINT_BODY = body(
    json=fields(
        {
            "url": URL,
            "events": {"type": "array", "items": {"type": "string", "enum": WebhookEvent.values}},
            "description": {"type": "string", "maxLength": 200},
        },
        required=["url", "events"],
    )
)


def _manager(request):
    if not request.caller.membership.can_manage:
        raise PermissionDenied("Only the team's owners and admins manage webhooks.")
    return request.caller


def _endpoint(request, endpoint_id: int) -> WebhookEndpoint:
    found = WebhookEndpoint.objects.filter(pk=endpoint_id, team=_manager(request).team).first()
    if found is None:
        raise Http404("No such endpoint")
    return found


def _fields(request) -> tuple[str, list, str]:
    body = read_json(request)
    url, events, description = body.get("url"), body.get("events"), body.get("description", "")
    if not isinstance(url, str):
        raise BadRequest(422, "invalid", "url must be a string.", "url")
    if not isinstance(events, list):
        raise BadRequest(422, "invalid", "events must be a list of event types.", "events")
    if not isinstance(description, str):
        raise BadRequest(422, "invalid", "description must be a string.", "description")
    return url, events, description


@router.get("", response=answers(200, list[EndpointOut]), summary="The team's endpoints")
def list_endpoints(request):
    return Status(200, list(WebhookEndpoint.objects.filter(team=_manager(request).team)))


@router.post(
    "",
    response=answers(201, EndpointOut),
    summary="Register an endpoint for some events",
    openapi_extra={"requestBody": ENDPOINT_BODY},
)
def create(request):
    _manager(request)
    caller = writer(request)
    return Status(201, endpoints.create_endpoint(caller.membership, *_fields(request)))


@router.get("/{endpoint_id}", response=answers(200, EndpointOut), summary="One endpoint")
def get_endpoint(request, endpoint_id: int):
    return Status(200, _endpoint(request, endpoint_id))


@router.put(
    "/{endpoint_id}",
    response=answers(200, EndpointOut),
    summary="Change an endpoint's URL, events or description",
    openapi_extra={"requestBody": ENDPOINT_BODY},
)
def update(request, endpoint_id: int):
    endpoint = _endpoint(request, endpoint_id)
    caller = writer(request)
    return Status(200, endpoints.update_endpoint(caller.membership, endpoint, *_fields(request)))


@router.delete("/{endpoint_id}", response=answers(204, None), summary="Delete an endpoint")
def delete(request, endpoint_id: int):
    endpoint = _endpoint(request, endpoint_id)
    endpoints.delete_endpoint(writer(request).membership, endpoint)
    return Status(204, None)


class LogFilters(Schema):
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@router.get(
    "/{endpoint_id}/deliveries",
    response=answers(200, DeliveryPage),
    summary="The endpoint's delivery log, newest first",
)
def deliveries(request, endpoint_id: int, filters: Query[LogFilters]):
    endpoint = _endpoint(request, endpoint_id)
    limit = min(max(filters.limit, 1), MAX_LIMIT)
    rows, next_cursor = page(endpoints.recent_deliveries(endpoint), filters.cursor, limit)
    return Status(200, {"items": rows, "page": {"next_cursor": next_cursor, "limit": limit}})


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/resend",
    response=answers(200, DeliveryOut),
    summary="Send a delivered or failed delivery again (same webhook-id)",
)
def resend(request, endpoint_id: int, delivery_id: int):
    endpoint = _endpoint(request, endpoint_id)
    writer(request)
    sent = endpoint.deliveries.filter(pk=delivery_id).first()
    if sent is None:
        raise Http404("No such delivery")
    if not delivery.send_again(sent):
        raise BadRequest(409, "conflict", "It is still being delivered, or the endpoint is off.")
    sent.refresh_from_db()
    return Status(200, sent)
