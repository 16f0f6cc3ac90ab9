"""Registering a team's webhook endpoints: the URL is checked like any customer URL, the events
are a subset of WebhookEvent, and each endpoint signs with its own `whsec_` secret."""

import base64
import secrets

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from studio.models import DeliveryState, Membership, WebhookDelivery, WebhookEndpoint
from studio.models import WebhookEvent as E
from studio.public_urls import UrlRefused, check_url

MAX_ENDPOINTS_PER_TEAM = 20
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
NOT_SENT_DISABLED = "Stopped: the endpoint was disabled."


class EndpointRefused(ValueError):
    """The endpoint cannot be saved as given; `errors` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _require_manager(membership: Membership) -> None:
    if not membership.can_manage:
        raise PermissionDenied("Only the team's owners and admins manage webhooks.")


def clean_events(events) -> list[str]:
    """The chosen event types in their canonical order; raises with a message naming the field."""
    chosen = [str(event) for event in events or []]
    unknown = sorted(set(chosen) - set(E.values))
    if unknown:
        raise EndpointRefused(
            {
                "events": [
                    f"Unknown event type {', '.join(unknown)}; choose from {', '.join(E.values)}."
                ]
            }
        )
    if not chosen:
        raise EndpointRefused({"events": ["Choose at least one event to receive."]})
    return [event for event in E.values if event in chosen]


def _clean(url: str, events, description: str) -> tuple[str, list[str], str]:
    errors: dict[str, list[str]] = {}
    try:
        url = check_url(url)
    except UrlRefused as refused:
        errors["url"] = [str(refused)]
    try:
        events = clean_events(events)
    except EndpointRefused as refused:
        errors |= refused.errors
    description = (description or "").strip()
    if len(description) > 200:
        errors["description"] = ["The description is longer than 200 characters."]
    if errors:
        raise EndpointRefused(errors)
    return url, events, description


def create_endpoint(membership: Membership, url: str, events, description="") -> WebhookEndpoint:
    _require_manager(membership)
    url, events, description = _clean(url, events, description)
    # A soft limit (two admins adding at once may pass it by one): it only bounds the fan-out.
    if membership.team.webhook_endpoints.count() >= MAX_ENDPOINTS_PER_TEAM:
        raise EndpointRefused(
            {"url": [f"A team may have at most {MAX_ENDPOINTS_PER_TEAM} webhook endpoints."]}
        )
    return WebhookEndpoint.objects.create(
        team=membership.team,
        url=url,
        events=events,
        description=description,
        secret=new_secret(),
        created_by=membership.user,
    )


def update_endpoint(
    membership: Membership, endpoint: WebhookEndpoint, url: str, events, description=""
) -> WebhookEndpoint:
    """New URL, events and description. Deliveries already recorded keep going to the endpoint
    (at its new URL); the events chosen apply from now on."""
    _require_manager(membership)
    old_url = endpoint.url
    endpoint.url, endpoint.events, endpoint.description = _clean(url, events, description)
    if endpoint.url != old_url:
        endpoint.failing_since = None  # the old address's failures say nothing of the new one
    endpoint.save(update_fields=["url", "events", "description", "failing_since"])
    return endpoint


def delete_endpoint(membership: Membership, endpoint: WebhookEndpoint) -> None:
    _require_manager(membership)
    endpoint.delete()  # its delivery log goes with it; a send in flight finds no row to record


def rotate_secret(membership: Membership, endpoint: WebhookEndpoint) -> str:
    """A new secret at once: attempts from now on are signed with it (the old one stops
    verifying, so the receiver must take the new one before the next event)."""
    _require_manager(membership)
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret"])
    return endpoint.secret


def enable(membership: Membership, endpoint: WebhookEndpoint) -> None:
    """Back on, with a clean record: failures before it was disabled no longer count."""
    _require_manager(membership)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        enabled=True, disabled_at=None, disabled_reason="", failing_since=None
    )


def disable(endpoint: WebhookEndpoint, reason: str, now=None) -> bool:
    """Stop sending to an endpoint; deliveries still waiting fail (each can be sent again once
    it is back on). True if this call disabled it."""
    now = now or timezone.now()
    with transaction.atomic():
        done = WebhookEndpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
            enabled=False, disabled_at=now, disabled_reason=reason[:300]
        )
        if done:
            # One in flight still records a 2xx (that is the truth), but not a failure: its
            # next attempt would wait for an endpoint that is off.
            waiting = [DeliveryState.PENDING, DeliveryState.SENDING]
            endpoint.deliveries.filter(state__in=waiting).update(
                state=DeliveryState.FAILED,
                next_attempt_at=None,
                claimed_until=None,
                last_error=NOT_SENT_DISABLED,
            )
    return bool(done)


def disable_by_hand(membership: Membership, endpoint: WebhookEndpoint) -> bool:
    _require_manager(membership)
    return disable(endpoint, f"Disabled by {membership.user}.")


def recent_deliveries(endpoint: WebhookEndpoint):
    return WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-created_at", "-pk")
