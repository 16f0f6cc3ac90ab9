"""Webhook endpoints through the API, for owners' and admins' tokens: register one (its URL
checked like any customer URL), receive a job's events signed for its secret, read the log and
send a delivery again."""

import json

import pytest
from standardwebhooks.webhooks import Webhook

from studio.api.tokens import create_token
from studio.jobs.states import transition
from studio.models import WebhookEndpoint
from studio.outbound.workers import deliver_due
from tests.factories import make_job
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db
HOOKS = "/api/v1/webhooks"


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    found = Receiver()
    yield found
    found.close()


def sender(client, personas, user, scope="rw"):
    raw = create_token(personas.membership(user), "hooks", scope)[1]

    def send(method, path, body=None):
        extra = {"data": json.dumps(body), "content_type": "application/json"} if body else {}
        return getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {raw}", **extra)

    return send


def test_an_owner_registers_an_endpoint_and_receives_signed_job_events(client, personas, receiver):
    send = sender(client, personas, personas.owner)
    made = send("post", HOOKS, {"url": receiver.url, "events": ["job.succeeded"]})
    assert made.status_code == 201, made.content
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["job.succeeded"]
    job = make_job(personas.team, personas.member, state="running")
    assert transition(job, "running", "succeeded")
    assert deliver_due(threads=1) == 1
    (got,) = receiver.received
    event = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert (event["type"], event["data"]["id"]) == ("job.succeeded", str(job.pk))
    log = send("get", f"{HOOKS}/{endpoint['id']}/deliveries").json()["items"]
    assert [(d["event"], d["state"], d["last_status_code"]) for d in log] == [
        ("job.succeeded", "delivered", 204)
    ]
    again = send("post", f"{HOOKS}/{endpoint['id']}/deliveries/{log[0]['id']}/resend")
    assert again.status_code == 200 and again.json()["state"] == "pending"
    assert deliver_due(threads=1) == 1
    assert receiver.ids() == [log[0]["message_id"]] * 2  # the same webhook-id both times
    changed = send(
        "put", f"{HOOKS}/{endpoint['id']}", {"url": receiver.url, "events": ["job.failed"]}
    )
    assert changed.json()["events"] == ["job.failed"]
    assert send("delete", f"{HOOKS}/{endpoint['id']}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://10.0.0.1/hook", "events": ["job.succeeded"]}, "url"),
        ({"url": "http://127.0.0.1:9/hook", "events": ["job.succeeded"]}, "url"),
        ({"url": "http://127.0.0.1:9/hook", "events": ["job.exploded"]}, "events"),
        ({"url": "http://127.0.0.1:9/hook", "events": "job.succeeded"}, "events"),
    ],
)
def test_a_bad_endpoint_is_refused_naming_the_field(client, personas, settings, body, field):
    if field == "events":  # a URL that would be accepted, so the events are what is refused
        settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    answer = sender(client, personas, personas.owner)("post", HOOKS, body)
    assert answer.status_code == 422 and answer.json()["error"]["field"] == field
    assert not WebhookEndpoint.objects.exists()


def test_members_and_read_tokens_cannot_manage_webhooks(client, personas):
    member = sender(client, personas, personas.member)
    body = {"url": "https://example.com/hook", "events": ["job.succeeded"]}
    assert member("get", HOOKS).status_code == 403
    assert member("post", HOOKS, body).status_code == 403
    read = sender(client, personas, personas.owner, scope="read")
    assert read("get", HOOKS).status_code == 200
    assert read("post", HOOKS, body).status_code == 403
    assert not WebhookEndpoint.objects.exists()
