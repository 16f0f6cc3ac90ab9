"""The webhook pages: owners and admins register endpoints and read delivery logs; members and
viewers are refused; another team's endpoints do not exist."""

import pytest
from django.urls import reverse
from django.utils import timezone

from studio.models import DeliveryState, Role, WebhookDelivery, WebhookEndpoint
from studio.outbound.endpoints import create_endpoint
from studio.outbound.events import new_message_id

D = DeliveryState


@pytest.fixture(autouse=True)
def local_receivers(settings):
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def endpoint(personas):
    owner = personas.membership(personas.owner)
    return create_endpoint(owner, "http://127.0.0.1:9/hooks", ["job.succeeded", "credits.low"])


def url(personas, name, *args):
    return reverse(name, args=[personas.team.slug, *args])


def delivery(endpoint, **fields) -> WebhookDelivery:
    fields = {
        "message_id": new_message_id(),
        "event": "job.succeeded",
        "payload": {"type": "job.succeeded", "timestamp": "2025-01-01T00:00:00Z", "data": {}},
    } | fields
    return WebhookDelivery.objects.create(endpoint=endpoint, **fields)


def test_an_admin_adds_an_endpoint_for_the_events_chosen(personas, client_for):
    personas.team.memberships.filter(user=personas.member).update(role=Role.ADMIN)
    client = client_for(personas.member)
    answer = client.post(
        url(personas, "webhooks"),
        {
            "url": "http://127.0.0.1:8123/hooks",
            "description": "shop",
            "events": ["job.failed", "job.started"],
        },
    )
    endpoint = WebhookEndpoint.objects.get()
    assert answer.status_code == 302 and answer.url == url(
        personas, "webhook_endpoint", endpoint.pk
    )
    assert endpoint.team == personas.team and endpoint.created_by == personas.member
    assert endpoint.events == ["job.started", "job.failed"] and endpoint.description == "shop"
    assert endpoint.secret.startswith("whsec_") and len(endpoint.secret) == 6 + 44
    listing = client.get(url(personas, "webhooks")).content.decode()
    assert "http://127.0.0.1:8123/hooks" in listing and endpoint.secret not in listing


@pytest.mark.parametrize(
    "address, allowed, says",
    [
        ("http://10.0.0.1/hooks", ["127.0.0.0/8"], "is not a public internet address"),
        ("http://127.0.0.1:8123/hooks", [], "is not a public internet address"),
        ("ftp://example.com/hooks", ["127.0.0.0/8"], "Only http:// and https://"),
    ],
)
def test_a_private_address_is_refused_with_a_clear_message(
    personas, client_for, settings, address, allowed, says
):
    settings.OUTBOUND_ALLOW_NETWORKS = allowed
    answer = client_for(personas.owner).post(
        url(personas, "webhooks"), {"url": address, "events": ["job.succeeded"]}
    )
    assert answer.status_code == 200 and not WebhookEndpoint.objects.exists()
    assert says in answer.context["form"].errors["url"][0]
    assert 'id="url-error"' in answer.content.decode()


def test_an_endpoint_needs_at_least_one_known_event(personas, client_for):
    client = client_for(personas.owner)
    none = client.post(url(personas, "webhooks"), {"url": "http://127.0.0.1:9/h"})
    assert none.context["form"].errors["events"] == ["Choose at least one event to receive."]
    odd = client.post(url(personas, "webhooks"), {"url": "http://127.0.0.1:9/h", "events": ["x"]})
    assert "events" in odd.context["form"].errors
    assert not WebhookEndpoint.objects.exists()


def test_the_log_shows_state_answer_code_attempts_and_error(personas, client_for, endpoint):
    now = timezone.now()
    failed = delivery(
        endpoint,
        state=D.FAILED,
        attempts=8,
        last_status_code=502,
        last_error="Answered 502: bad gateway",
        last_attempt_at=now,
    )
    delivery(endpoint, state=D.PENDING, attempts=2, next_attempt_at=now, last_status_code=500)
    page = client_for(personas.owner).get(url(personas, "webhook_endpoint", endpoint.pk))
    html = page.content.decode()
    assert failed.message_id in html and "Answered 502: bad gateway" in html
    row = html[html.index(f'id="delivery-{failed.pk}"') :]
    row = row[: row.index("</tr>")]
    assert ">502<" in row and ">8<" in row and "Failed (no more attempts)" in row
    assert "Send again" in row
    assert 'hx-trigger="every 5s"' in html  # the log refreshes while a delivery is pending
    assert endpoint.secret not in html


def test_the_log_is_paginated(personas, client_for, endpoint):
    for _ in range(30):
        delivery(endpoint, state=D.DELIVERED, attempts=1, last_status_code=200)
    client = client_for(personas.owner)
    first = client.get(url(personas, "webhook_endpoint", endpoint.pk))
    assert (
        first.content.decode().count("Send again") == 25 and "Page 1 of 2" in first.content.decode()
    )
    second = client.get(url(personas, "webhook_endpoint", endpoint.pk) + "?page=2")
    assert second.content.decode().count("Send again") == 5


def test_send_again_puts_the_message_back_in_line(
    personas, client_for, endpoint, django_capture_on_commit_callbacks
):
    failed = delivery(endpoint, state=D.FAILED, attempts=8, last_status_code=500)
    with django_capture_on_commit_callbacks() as nudges:
        answer = client_for(personas.owner).post(
            url(personas, "webhook_resend", endpoint.pk, failed.pk)
        )
    assert answer.status_code == 302 and len(nudges) == 1  # a worker is nudged, not this request
    failed.refresh_from_db()
    assert (failed.state, failed.attempts) == (D.PENDING, 0)


def test_the_secret_is_shown_to_admins_on_demand(personas, client_for, endpoint):
    client = client_for(personas.owner)
    shown = client.post(
        url(personas, "webhook_secret", endpoint.pk), headers={"HX-Request": "true"}
    )
    assert endpoint.secret in shown.content.decode() and "<html" not in shown.content.decode()
    old = endpoint.secret
    rotated = client.post(url(personas, "webhook_rotate", endpoint.pk))
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in rotated.content.decode()


def test_an_admin_edits_turns_off_on_and_deletes_an_endpoint(personas, client_for, endpoint):
    client = client_for(personas.owner)
    page = url(personas, "webhook_endpoint", endpoint.pk)
    client.post(page, {"url": endpoint.url, "events": ["job.canceled"]})
    endpoint.refresh_from_db()
    assert endpoint.events == ["job.canceled"]
    waiting = delivery(endpoint, next_attempt_at=timezone.now())
    client.post(url(personas, "webhook_disable", endpoint.pk))
    endpoint.refresh_from_db()
    waiting.refresh_from_db()
    assert not endpoint.enabled and waiting.state == D.FAILED
    assert "Disabled by owner@a.test." in client.get(page).content.decode()
    client.post(url(personas, "webhook_enable", endpoint.pk))
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.disabled_reason == ""
    client.post(url(personas, "webhook_delete", endpoint.pk))
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


def test_the_settings_page_links_webhooks_for_admins_and_shows_why_one_is_off(
    personas, client_for, endpoint
):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_reason="Every delivery failed for 5 days."
    )
    owner_page = client_for(personas.owner).get(url(personas, "team_settings")).content.decode()
    assert url(personas, "webhooks") in owner_page
    assert "Every delivery failed for 5 days." in owner_page
    member_page = client_for(personas.member).get(url(personas, "team_settings")).content.decode()
    assert url(personas, "webhooks") not in member_page and "failed for 5 days" not in member_page


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_are_refused(personas, client_for, endpoint, who):
    sent = delivery(endpoint, state=D.FAILED)
    client = client_for(getattr(personas, who))
    assert client.get(url(personas, "webhooks")).status_code == 403
    assert (
        client.post(url(personas, "webhooks"), {"url": "http://127.0.0.1:9/x"}).status_code == 403
    )
    assert client.get(url(personas, "webhook_endpoint", endpoint.pk)).status_code == 403
    for name in ("webhook_secret", "webhook_rotate", "webhook_disable", "webhook_delete"):
        assert client.post(url(personas, name, endpoint.pk)).status_code == 403, name
    assert client.post(url(personas, "webhook_resend", endpoint.pk, sent.pk)).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.enabled and WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_another_team_cannot_reach_the_endpoint_through_its_own_slug(
    personas, client_for, endpoint
):
    sent = delivery(endpoint, state=D.FAILED)
    client = client_for(personas.outsider)
    theirs = personas.outsider_team.slug
    assert client.get(reverse("webhook_endpoint", args=[theirs, endpoint.pk])).status_code == 404
    for name in ("webhook_secret", "webhook_rotate", "webhook_delete"):
        assert client.post(reverse(name, args=[theirs, endpoint.pk])).status_code == 404
    resend = reverse("webhook_resend", args=[theirs, endpoint.pk, sent.pk])
    assert client.post(resend).status_code == 404
    # Their own endpoint with our delivery's id: still no such delivery.
    own = create_endpoint(
        personas.outsider_team.memberships.get(), "http://127.0.0.1:9/b", ["job.failed"]
    )
    resend_mixed = reverse("webhook_resend", args=[theirs, own.pk, sent.pk])
    assert client.post(resend_mixed).status_code == 404
    sent.refresh_from_db()
    assert sent.state == D.FAILED
